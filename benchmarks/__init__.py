"""facegen's benchmarks: run each as `python -m benchmarks.NAME` (see harness.py)."""
