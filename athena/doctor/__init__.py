"""`athena doctor`, scripts/verify_env.py and `athena audit`: standard library only (mlx and
friends are probed in a child process)."""
