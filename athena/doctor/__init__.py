"""Environment health checks (`athena doctor`, scripts/verify_env.py) and the CUDA-package
audit (`athena audit`). Cheap to import: the standard library only; mlx and friends are
probed in a child process."""
