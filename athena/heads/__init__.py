"""The MemoryActionHead's learners: GRPO on MLX or torch, its trainer and `athena train-head`.

The head itself (the networks, new_head, load_head, the weights file) lives on the model's
floor, in athena.models.head (import it from there). Here: GRPO (`athena.heads.grpo`, one
learner per framework in mlx_learner.py and torch_learner.py), the train-head run
(`train.py`), data-parallel runs (`distributed.py`, `launch.py`) and a toy task (`toy.py`).
Importing this package imports neither mlx, torch nor numpy.
"""
