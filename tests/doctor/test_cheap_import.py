"""Importing the doctor (and the CLI that registers it) loads the standard library only."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
before = set(sys.modules)
import athena.cli, athena.doctor, athena.doctor.checks, athena.doctor.audit
import athena.host, athena.doctor.lock, athena.doctor.probe, athena.doctor.report
import athena.doctor.compare, athena.doctor.numerics
athena.cli.build_parser()
new = sorted(set(sys.modules) - before)
print(json.dumps(new))
"""


def test_the_doctor_imports_only_the_standard_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    foreign = sorted(
        {name.split(".")[0] for name in loaded}
        - set(sys.stdlib_module_names)
        - {"athena", "_distutils_hack"}
    )
    assert foreign == [], f"importing athena.doctor loaded {foreign}"
    for heavy in ("mlx", "mlx_lm", "transformers", "torch", "numpy"):
        assert heavy not in loaded
