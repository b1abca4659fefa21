#include <gtest/gtest.h>
#include <parasol/error.hpp>
#include <parasol/run_file.hpp>

#include <filesystem>

#include "parasol_test.hpp"

namespace h5 = parasol::h5;
using parasol::RunFile;
using parasol::Status;

TEST(RunFile, WrittenAsPartialThenRenamedWithAttributesAndHistory) {
  const std::string path = parasol::test::scratch_dir() + "/run.h5";
  {
    RunFile run(MPI_COMM_WORLD, path, "testsolver", "m1", 5, {"residual"});
    EXPECT_TRUE(std::filesystem::exists(path + ".partial"));
    EXPECT_FALSE(std::filesystem::exists(path));
    run.append_history({1, 0.1, 10.0, 1e-1});
    run.append_history({2, 0.2, 5.0, 1e-2});
    run.describe_input("data", "in.h5", {4, 2}, 1234u);
    run.finalize(Status::Converged, 2, 0.25, "done");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read);
  EXPECT_EQ(h5::attr_string(f, "/", "solver"), "testsolver");
  EXPECT_EQ(h5::attr_string(f, "/", "status"), "converged");
  EXPECT_EQ(h5::attr_int(f, "/", "nranks"), parasol::test::size());
  EXPECT_EQ(h5::attr_int(f, "/", "iterations"), 2);
  EXPECT_EQ(h5::attr_int(f, "/", "seed"), 5);
  EXPECT_EQ(h5::read_doubles(f, "/history/objective"), (std::vector<double>{10.0, 5.0}));
  EXPECT_EQ(h5::read_doubles(f, "/history/residual"), (std::vector<double>{1e-1, 1e-2}));
  EXPECT_EQ(h5::attr_string(f, "/history", "columns"), "iteration,wall_time,objective,residual");
  EXPECT_EQ(h5::attr_int(f, "/input/data", "crc32"), 1234);
}

TEST(RunFile, FailedRunNeverReplacesAnEarlierFile) {
  const std::string path = parasol::test::scratch_dir() + "/run.h5";
  {
    RunFile good(MPI_COMM_WORLD, path, "s", "m", 1, {});
    good.append_history({1, 0.0, 1.0});
    good.finalize(Status::Converged, 1, 0.0);
  }
  {
    RunFile bad(MPI_COMM_WORLD, path, "s", "m", 1, {});
    bad.finalize(Status::Failed, 0, 0.0, "broken input");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  h5::File f(MPI_COMM_WORLD, path, h5::File::Mode::Read);
  EXPECT_EQ(h5::attr_string(f, "/", "status"), "converged");
  h5::File partial(MPI_COMM_WORLD, path + ".partial", h5::File::Mode::Read);
  EXPECT_EQ(h5::attr_string(partial, "/", "status"), "failed");
  EXPECT_EQ(h5::attr_string(partial, "/", "message"), "broken input");
}

TEST(RunFile, ExitCodes) {
  EXPECT_EQ(parasol::exit_code(Status::Converged), 0);
  EXPECT_EQ(parasol::exit_code(Status::MaxIterations), 0);
  EXPECT_EQ(parasol::exit_code(Status::Interrupted), 75);
  EXPECT_NE(parasol::exit_code(Status::Failed), 0);
  EXPECT_STREQ(parasol::to_string(Status::MaxIterations), "max_iterations");
}

TEST(RunFile, HistoryIsBatchedUntilTheFlushInterval) {
  const std::string path = parasol::test::scratch_dir() + "/run.h5";
  RunFile run(MPI_COMM_WORLD, path, "s", "m", 1, {});
  run.set_flush_interval(1e9);
  run.append_history({1, 0.0, 1.0});  // the first row is written at once
  run.append_history({2, 0.1, 0.5});
  run.append_history({3, 0.2, 0.25});
  EXPECT_EQ(h5::read_doubles(run.file(), "/history/objective").size(), 1u);
  run.flush_history();
  EXPECT_EQ(h5::read_doubles(run.file(), "/history/objective"),
            (std::vector<double>{1.0, 0.5, 0.25}));
  EXPECT_EQ(h5::attr_int(run.file(), "/", "iterations"), 3);
  run.finalize(Status::MaxIterations, 3, 0.2);
}
