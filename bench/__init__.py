"""Benchmarks (``make bench`` = ``python -m bench.run``): numbers, never assertions."""
