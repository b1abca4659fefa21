"""Option handling that every parasol driver shares, checked on the real executables.

Each driver is run under mpiexec at 1 and 2 ranks (3 for the error paths): -help lists the
common options with defaults and exits 0; an unknown or misspelled option, a bad value or an
unknown method name exits non-zero on every rank with a message naming the option; options
given through -options_file are read and checked the same way; -version prints the versions
of parasol and its libraries once and runs nothing.
"""
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("PARASOL_BIN", "build/drivers")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
FAMILIES = ["sparsecode", "alsketch", "relu", "bilevel"]


def drivers():
    found = [f"parasol-{f}" for f in FAMILIES if os.path.exists(os.path.join(BIN, f"parasol-{f}"))]
    if not found:
        raise unittest.SkipTest(f"no drivers built in {BIN}")
    return found


def run(driver, args, ranks=1, timeout=120):
    cmd = [MPIEXEC, "-n", str(ranks), "--oversubscribe", os.path.join(BIN, driver)] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class CommonOptions(unittest.TestCase):
    def test_help_lists_common_options_with_defaults_and_exits_zero(self):
        for driver in drivers():
            with self.subTest(driver=driver):
                p = run(driver, ["-help"])
                self.assertEqual(p.returncode, 0, p.stderr)
                for option in ["-data", "-output", "-seed", "-max_it", "-tol", "-checkpoint",
                               "-checkpoint_every", "-restart", "-monitor"]:
                    self.assertRegex(p.stdout, rf"\n\s+{option}:? <", f"{driver} -help lacks {option}")
                self.assertIn(f"parasol-{driver.split('-')[1]}.h5", p.stdout)

    def test_version_prints_versions_once_and_runs_nothing(self):
        for driver in drivers() + ["parasol-data"]:
            for flag in ("-version", "--version"):
                with self.subTest(driver=driver, flag=flag), tempfile.TemporaryDirectory() as d:
                    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", os.path.abspath(os.path.join(BIN, driver)), flag]
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=d)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertRegex(p.stdout, rf"^{driver}: parasol \d+\.\d+\.\d+ \(PETSc 3\.\d+")
                    self.assertIn("HDF5 1.", p.stdout)
                    self.assertEqual(p.stdout.count("parasol "), 1, p.stdout)  # rank 0 only
                    self.assertEqual(os.listdir(d), [], "-version must not run the job")

    def test_unknown_option_fails_on_every_rank_with_suggestion(self):
        for driver in drivers():
            with self.subTest(driver=driver):
                p = run(driver, ["-max_itt", "5"], ranks=3)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("-max_itt", p.stderr)
                self.assertIn("did you mean -max_it", p.stderr)
                # Printed once (rank 0), not once per rank.
                self.assertEqual(p.stderr.count("unknown option"), 1, p.stderr)

    def test_bad_values_are_rejected_naming_the_option(self):
        for driver in drivers():
            for args, name in [(["-tol", "-1"], "-tol"), (["-max_it", "ten"], "-max_it"),
                               (["-checkpoint_every", "5"], "-checkpoint")]:
                with self.subTest(driver=driver, args=args):
                    p = run(driver, args, ranks=2)
                    self.assertNotEqual(p.returncode, 0)
                    self.assertIn(name, p.stderr)

    def test_unknown_method_lists_valid_choices(self):
        for driver in drivers():
            with self.subTest(driver=driver):
                help_text = run(driver, ["-help"]).stdout
                if "-method <" not in help_text:
                    continue
                p = run(driver, ["-method", "no_such_method"], ranks=2)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("no_such_method", p.stderr)
                self.assertIn("valid choices", p.stderr)

    def test_options_file_is_read_and_checked(self):
        for driver in drivers():
            with self.subTest(driver=driver), tempfile.TemporaryDirectory() as tmp:
                bad = os.path.join(tmp, "bad.opts")
                with open(bad, "w") as f:
                    f.write("-tol 1e-3\n-not_an_option 1\n")
                p = run(driver, ["-options_file", bad], ranks=2)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("-not_an_option", p.stderr)
                good = os.path.join(tmp, "good.opts")
                with open(good, "w") as f:
                    f.write("-max_it 7\n")
                p = run(driver, ["-options_file", good, "-help"])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertRegex(p.stdout, r"-max_it <(now )?7")


if __name__ == "__main__":
    unittest.main()
