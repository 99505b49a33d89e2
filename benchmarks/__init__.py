"""mre.benchmarks."""
