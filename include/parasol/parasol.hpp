#pragma once
// Umbrella header: the shared machinery and every solver family.
#include <parasol/version.hpp>
#include <parasol/error.hpp>
#include <parasol/session.hpp>
#include <parasol/options.hpp>
#include <parasol/partition.hpp>
#include <parasol/random.hpp>
#include <parasol/h5.hpp>
#include <parasol/run_file.hpp>
#include <parasol/solver.hpp>
#include <parasol/dataset.hpp>
#include <parasol/data_tools.hpp>
#include <parasol/driver.hpp>
#if __has_include(<parasol/sparsecode.hpp>)
#include <parasol/sparsecode.hpp>
#endif
#if __has_include(<parasol/alsketch.hpp>)
#include <parasol/alsketch.hpp>
#endif
#if __has_include(<parasol/relu.hpp>)
#include <parasol/relu.hpp>
#endif
#if __has_include(<parasol/bilevel.hpp>)
#include <parasol/bilevel.hpp>
#endif
