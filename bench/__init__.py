"""Benchmarks against the performance targets of issue 9 (not part of the test suite)."""
