#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/options.hpp>

#include <petscsys.h>

using parasol::Error;
using parasol::OptionReader;

namespace {
// Sets options for one test and removes them afterwards.
struct ScopedOptions {
  std::vector<std::string> names;
  ScopedOptions(std::initializer_list<std::pair<const char*, const char*>> values) {
    for (auto& [name, value] : values) {
      PetscOptionsSetValue(nullptr, name, value);
      names.push_back(name);
    }
  }
  ~ScopedOptions() {
    for (auto& name : names) PetscOptionsClearValue(nullptr, name.c_str());
  }
};
}  // namespace

TEST(Options, ReadsValuesAndDefaults) {
  ScopedOptions set({{"-t_alpha", "2.5"}, {"-t_count", "12"}, {"-t_name", "abc"},
                     {"-t_on", nullptr}, {"-t_list", "0:5,0.8:1"}});
  OptionReader r(MPI_COMM_WORLD, "t_", "test");
  EXPECT_EQ(r.real("alpha", "a real", 1.0), 2.5);
  EXPECT_EQ(r.real("beta", "unset real", 1.5), 1.5);
  EXPECT_EQ(r.integer("count", "an integer", 3), 12);
  EXPECT_EQ(r.string("name", "a string", "x"), "abc");
  EXPECT_TRUE(r.flag("on", "a flag", false));
  EXPECT_EQ(r.reals("list", "pairs", {}), (std::vector<double>{0, 5, 0.8, 1}));
  EXPECT_TRUE(r.was_set("alpha"));
  EXPECT_FALSE(r.was_set("beta"));
}

TEST(Options, RejectsBadValuesNamingTheOption) {
  ScopedOptions set({{"-t_tol", "-1"}, {"-t_it", "1.5"}, {"-t_method", "newtn"}});
  OptionReader r(MPI_COMM_WORLD, "t_", "test");
  try {
    r.real("tol", "tolerance", 1e-8, 0.0);
    FAIL() << "negative tolerance accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-t_tol"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.integer("it", "iterations", 1), Error);
  try {
    r.choice("method", "method", {"newton", "gradient"}, "newton");
    FAIL() << "unknown choice accepted";
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("newton, gradient"), std::string::npos) << text;
  }
}

TEST(Options, UnknownOptionIsAnErrorWithSuggestion) {
  {
    OptionReader r(MPI_COMM_WORLD, "", "test");
    r.real("tolerance", "tolerance", 1.0);
  }
  ScopedOptions set({{"-tolerence", "3"}});
  try {
    parasol::reject_unknown_options(MPI_COMM_WORLD);
    FAIL() << "unknown option accepted";
  } catch (const Error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("-tolerence"), std::string::npos) << text;
    EXPECT_NE(text.find("did you mean -tolerance"), std::string::npos) << text;
  }
}

TEST(Options, CommonOptionsValidation) {
  parasol::CommonOptions o;
  o.output = "x.h5";
  std::string why;
  EXPECT_TRUE(o.IsValid(&why));
  o.checkpoint_every = 5;
  EXPECT_FALSE(o.IsValid(&why));
  EXPECT_NE(why.find("-checkpoint"), std::string::npos);
  ScopedOptions set({{"-max_it", "-3"}});
  EXPECT_THROW(parasol::read_common_options(MPI_COMM_WORLD, "test", {}), Error);
}

TEST(Options, RunFileRecordsEffectiveValuesIncludingDefaults) {
  ScopedOptions set({{"-t2_given", "3"}, {"-ksp_type", "cg"}});
  {
    OptionReader r(MPI_COMM_WORLD, "t2_", "test");
    r.integer("given", "given", 1);
    r.real("defaulted", "default", 0.25);
    r.flag("switch", "flag", false);
  }
  const std::string text = parasol::options_as_text();
  EXPECT_NE(text.find("-t2_given 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("-t2_defaulted 0.25\n"), std::string::npos) << text;
  EXPECT_NE(text.find("-t2_switch false"), std::string::npos) << text;
  EXPECT_NE(text.find("-ksp_type cg"), std::string::npos) << text;  // given, read elsewhere
}
