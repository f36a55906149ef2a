"""Run under mlx.launch -n 2 by test_distributed.py: rank 1 never joins the all_sum (or,
with "init", never connects at all), so rank 0's watchdog must stop it with a message (a
real ring, a real hang)."""

import os
import signal
import sys
import time

import mlx.core as mx

from athena.heads.distributed import Collectives

if sys.argv[2:] == ["init"] and os.environ["MLX_RANK"] == "1":
    signal.pause()  # until mlx.launch stops this process
collectives = Collectives(timeout=float(sys.argv[1]))
print(f"rank {collectives.rank} connected", flush=True)
collectives.barrier()  # both ranks are up
if collectives.rank == 1:
    time.sleep(60)
    print("rank 1 woke up", flush=True)  # only if nothing stopped it first
else:
    collectives.average_gradients({"w": mx.ones(4)})
    print("rank 0: the all_sum returned", flush=True)
