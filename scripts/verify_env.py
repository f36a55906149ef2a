#!/usr/bin/env python3
"""The athena environment health check (also `athena doctor`); runs with any python3 >= 3.9.

    python3 scripts/verify_env.py            # a table; exit code 0 when required checks pass
    python3 scripts/verify_env.py --json     # for CI (schema: athena/doctor/schema.json)
    python3 scripts/verify_env.py --smoke    # also load a tiny OLMoE and generate 4 tokens

It needs no installed package: it puts this checkout on sys.path and imports athena.doctor,
which probes mlx in a child process and uses the standard library only. Python 3.9 and 3.10
have no tomllib: there the report says uv.lock and pyproject.toml were not read.
"""

import sys
from pathlib import Path

if sys.version_info < (3, 9):  # noqa: UP036 - any python3 may run this script
    sys.exit(f"verify_env.py needs Python 3.9 or newer, not {sys.version.split()[0]}.")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from athena.doctor.checks import main

if __name__ == "__main__":
    sys.exit(main())
