#pragma once
// Private helpers shared by the model implementations.
#include <parasol/sparsecode.hpp>

#include <memory>
#include <string>
#include <vector>

namespace parasol::sparsecode {

// The `count` indices with the largest scores (ties: lower index first), sorted ascending.
void select_top(const std::vector<double>& score, int count, int* selected);
// ProSper's standard initialization: W_h = data mean + N(0, (mean_std / 4)^2), the noise of
// row h drawn from Random(seed, "sparsecode.init.W", h): identical on every rank.
Eigen::MatrixXd initial_fields(const DataMoments& moments, int H, std::uint64_t seed);

std::unique_ptr<Model> make_linear_model(const std::string& kind, const std::vector<double>& values);
std::unique_ptr<Model> make_max_model(const std::string& kind);
std::unique_ptr<Model> make_gsc_model(const std::string& noise);

}  // namespace parasol::sparsecode
