"""Environment health checks (`athena doctor`, scripts/verify_env.py) and the CUDA-package
audit (`athena audit`). Cheap to import: the standard library, and `packaging` where it is
installed (names.py falls back to the standard library); mlx and friends are probed in a child
process."""
