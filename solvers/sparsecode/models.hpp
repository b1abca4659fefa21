#pragma once
// Private helpers shared by the model implementations.
#include <parasol/sparsecode.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace parasol::sparsecode {

inline constexpr double kLog2Pi = 1.8378770664093454836;

// The `count` indices with the largest scores (ties: lower index first), sorted ascending.
void select_top(const std::vector<double>& score, int count, int* selected);
// ProSper's standard initialization: W_h = data mean + N(0, (mean_std / 4)^2), the noise of
// row h drawn from Random(seed, "sparsecode.init.W", h): identical on every rank.
Eigen::MatrixXd initial_fields(const DataMoments& moments, int H, std::uint64_t seed);

// Base of the models with isotropic Gaussian noise N(0, sigma^2 I) (bsc, tsc, dsc, mca, mmca):
// the per-E-step constants every such model needs, set by prepare_gaussian().
class GaussianNoiseModel : public Model {
 protected:
  void prepare_gaussian(const Parameters& p, const StateSet& states);

  Eigen::MatrixXd W_;
  int H_ = 0, D_ = 0;
  double variance_ = 1.0;
  double log_norm_ = 0.0;           // -D/2 log(2 pi sigma^2)
  Eigen::VectorXd field_norms_;     // |W_h|^2
  Eigen::VectorXd log_prior_;       // log prior of every state
};

// Per-candidate-set terms of an E-step, computed once per candidate set and iteration: points
// that share their candidates (common when H' is close to H) share the costly part. Memory is
// bounded: beyond the budget, terms are computed for the point at hand but not kept.
template <class Terms>
class CandidateCache {
 public:
  void clear() {
    entries_.clear();
    doubles_ = 0.0;
  }
  // make() builds the terms; size(terms) is their size in doubles.
  template <class Make, class Size>
  const Terms& get(const int* candidates, int count, Make make, Size size) {
    std::vector<int> key(candidates, candidates + count);
    auto found = entries_.find(key);
    if (found != entries_.end()) return found->second;
    Terms terms = make();
    const double doubles = size(terms);
    if (doubles_ + doubles > kBudgetDoubles) {
      scratch_ = std::move(terms);
      return scratch_;
    }
    doubles_ += doubles;
    return entries_.emplace(std::move(key), std::move(terms)).first->second;
  }

 private:
  static constexpr double kBudgetDoubles = 3e7;  // about 240 MB
  std::map<std::vector<int>, Terms> entries_;
  Terms scratch_;
  double doubles_ = 0.0;
};

std::unique_ptr<Model> make_linear_model(const std::string& kind, const std::vector<double>& values);
std::unique_ptr<Model> make_max_model(const std::string& kind);
std::unique_ptr<Model> make_gsc_model(const std::string& noise);

}  // namespace parasol::sparsecode
