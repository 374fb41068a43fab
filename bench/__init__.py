"""fastnova benchmarks: load runs (bench.load), reports (bench.report), micro suites (test_micro_*)."""
