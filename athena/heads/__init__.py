"""The MemoryActionHead's GRPO learners (MLX, torch), trainer, `athena train-head`, data-parallel
runs and a toy task; the head itself is athena.models.head. Imports neither mlx, torch nor numpy."""
