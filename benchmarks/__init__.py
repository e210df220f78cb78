"""Performance benchmarks (run as modules, e.g. `python -m benchmarks.generate_load`)."""
