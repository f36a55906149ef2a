"""The probe: run as `python probe.py MODE` in a child of the checked Python (>= 3.9), without
athena on sys.path (so self-contained), so that a broken mlx that kills its interpreter is a
failed step, not a crashed doctor. One JSON line per step, flushed, so the lines before a
crash survive. Modes: `env`, `mlx`, `files [NAME...]`; `run_probe` runs them and reads them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STEP_PREFIX = "ATHENA-PROBE "
DEFAULT_TIMEOUT = 600.0


def emit(step: str, **fields: object) -> None:
    """One result line: the marker, then JSON with at least `step`."""
    print(STEP_PREFIX + json.dumps({**fields, "step": step}, default=str), flush=True)


def distributions() -> list:
    """Every installed distribution of this interpreter: name, version, requirement strings,
    the wheel tags it was installed from (its WHEEL file's `Tag:` lines) and its installer."""
    from importlib import metadata

    return [
        {
            "name": dist.metadata["Name"],
            "version": dist.version,
            "requires": dist.requires or [],
            "tags": [line[4:].strip() for line in wheel.splitlines() if line[:4] == "Tag:"],
            "installer": (dist.read_text("INSTALLER") or "").strip() or None,
        }
        for dist in metadata.distributions()
        if dist.metadata["Name"]
        for wheel in [dist.read_text("WHEEL") or ""]
    ]


def environment() -> dict:
    """Interpreter facts and every installed distribution."""
    return {
        "executable": sys.executable,
        "version": ".".join(str(part) for part in sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "distributions": distributions(),
    }


def file_sha256(path: str) -> str:
    """RECORD's form: urlsafe base64 of the sha256, without padding."""
    import base64
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def verify_files(names: list) -> None:
    """For each distribution (all, or the normalized `names`): the files its RECORD lists that
    changed (sha256) or are missing, and the files added inside its folders that no RECORD
    lists (bytecode caches aside). One line per distribution. RECORD is read here, not through
    `Distribution.files`, which leaves out the missing files (Python >= 3.12)."""
    import csv
    import re
    from importlib import metadata

    owners: dict = {}
    listed, known, chosen = set(), set(), []
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        root = os.path.normpath(str(dist.locate_file("")))
        rows = [r for r in csv.reader((dist.read_text("RECORD") or "").splitlines()) if r]
        for row in rows:
            path = os.path.normpath(os.path.join(root, row[0]))
            listed.add(path)
            if not row[0].startswith(".."):  # not a script in bin/
                owners.setdefault(os.path.dirname(path), set()).add(name)
            folder = os.path.dirname(path)
            while folder not in known and folder != os.path.dirname(folder):
                known.add(folder)  # a folder that holds a listed file, or a folder of one
                folder = os.path.dirname(folder)
        if name and (not names or name in names):
            chosen.append((name, dist.version, root, rows))
    for name, version, root, rows in sorted(chosen):
        changed, missing, folders = [], [], set()
        hashed = [(row[0], row[1][len("sha256=") :]) for row in rows if row[1:2] != [""]]
        for file, digest in hashed:  # RECORD lists itself, and .pyc files, without a hash
            path = os.path.normpath(os.path.join(root, file))
            folders.add(os.path.dirname(path))
            try:
                if file_sha256(path) != digest:
                    changed.append(file)
            except FileNotFoundError:
                missing.append(file)
            except OSError as error:
                changed.append(f"{file} (cannot be read: {error.strerror})")
        added = []
        for folder in sorted(f for f in folders if f != root and owners.get(f) == {name}):
            for here, subfolders, files in os.walk(folder):  # into folders no RECORD lists
                subfolders[:] = [
                    d
                    for d in subfolders
                    if d != "__pycache__" and os.path.join(here, d) not in known
                ]
                paths = (os.path.join(here, file) for file in files if not file.endswith(".pyc"))
                added += [os.path.relpath(path, root) for path in paths if path not in listed]
        fields = {"changed": changed, "missing": missing, "added": sorted(added)}
        emit("files " + name, ok=True, version=version, files=len(hashed), **fields)


def run_step(step: str, function: Callable[[], dict]) -> dict | None:
    """Run one check; its return value (a dict) becomes the line's fields."""
    emit(step + ":start")
    try:
        fields = function() or {}
    except BaseException as error:  # `Type: message`, as at the bottom of a traceback
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        emit(step, ok=False, error=text)
        return None
    emit(step, ok=True, **fields)
    return fields


def imported(module: str, *names: str) -> Callable[[], dict]:
    """A step that imports `module` and reports its `__path__`/`__version__` or `names`.
    A step's `detail` is the doctor's text for it when it works (default "ok")."""

    def step() -> dict:
        import importlib

        found = importlib.import_module(module)
        if names:
            return {name: callable(getattr(found, name)) for name in names}
        if module == "mlx":
            path = getattr(found, "__path__", [None])[0]
            return {"path": path, "detail": f"ok ({path})"}
        version = getattr(found, "__version__", None)
        return {"version": version, "detail": f"ok ({version})"}

    return step


def check(ok: object, message: str) -> None:
    """Fail the step with `message` unless `ok`."""
    if not ok:
        raise AssertionError(message)


def array_ops() -> dict:
    import mlx.core as mx

    a, b = mx.array([[1.0, 2.0], [3.0, 4.0]]), mx.array([[5.0, 6.0], [7.0, 8.0]])
    product, total, expected = (a @ b).tolist(), (a + b).sum().item(), [[19.0, 22.0], [43.0, 50.0]]
    check(
        product == expected and total == 36.0,
        f"a @ b = {product}, sum(a + b) = {total}; expected {expected} and 36.0",
    )
    return {"matmul": product, "sum": total, "detail": f"a @ b = {product}"}


def evaluate() -> dict:
    import mlx.core as mx

    x = mx.arange(10, dtype=mx.float32)
    y = mx.exp(mx.zeros_like(x)) * x
    mx.eval(y)
    values = y.tolist()
    check(values == [float(i) for i in range(10)], f"mx.eval gave {values}, expected 0..9")
    return {"values": values, "detail": "evaluated arange * exp(0)"}


def lazy() -> dict:
    """A graph that describes 8 MiB of results allocates nothing until mx.eval."""
    import mlx.core as mx

    count, size = 1 << 21, 4 << 21  # float32: 8 MiB
    active = getattr(mx, "get_active_memory", None) or mx.metal.get_active_memory
    before = active()
    y = mx.arange(count, dtype=mx.float32) * 3.0 + 1.0
    after_graph = active()
    mx.eval(y)
    after_eval = active()
    check(
        after_graph - before < size,
        f"building the graph allocated {after_graph - before} bytes before mx.eval "
        f"(expected < {size}): evaluation is not lazy",
    )
    check(
        after_eval - before >= size,
        f"mx.eval allocated only {after_eval - before} bytes for a {size}-byte result",
    )
    check(y[count - 1].item() == 3.0 * (count - 1) + 1.0, "the evaluated values are wrong")
    return {
        "bytes_result": size,
        "active_before": before,
        "active_after_graph": after_graph,
        "active_after_eval": after_eval,
        "detail": f"building the graph allocated {after_graph - before} B, mx.eval "
        f"{after_eval - before} B (result {size} B)",
    }


def default_device() -> dict:
    import mlx.core as mx

    device = mx.default_device()
    try:
        metal = bool(mx.metal.is_available())
    except Exception:
        metal = None
    return {
        "device": str(device),
        "detail": str(device),
        "device_type": str(device.type).split(".")[-1],
        "metal_available": metal,
    }


def device_info() -> dict:
    import mlx.core as mx

    get_info = getattr(mx, "device_info", None) or mx.metal.device_info
    info = {str(key): value for key, value in dict(get_info()).items()}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(info.items())) or "empty"
    return {"info": info, "detail": detail}


def quantize_round_trip() -> dict:
    """4-bit affine quantization, group 64: each value comes back within one step of its group."""
    import mlx.core as mx

    group_size, bits = 64, 4
    w = mx.random.normal((128, 256), key=mx.random.key(0))
    packed, scales, biases = mx.quantize(w, group_size=group_size, bits=bits)
    restored = mx.dequantize(packed, scales, biases, group_size=group_size, bits=bits)
    error = mx.abs(w - restored).reshape(128, 256 // group_size, group_size).max(axis=-1)
    ratio = float((error / mx.abs(scales)).max().item())  # type: ignore[arg-type]
    relative = float((mx.abs(w - restored).mean() / mx.abs(w).mean()).item())  # type: ignore[arg-type]
    check(
        ratio <= 1.05 and relative < 0.2,
        f"round-trip error {ratio:.3f} quantization steps (bound 1.05), mean relative "
        f"{relative:.3f} (bound 0.2)",
    )
    return {
        "bits": bits,
        "group_size": group_size,
        "max_error_in_steps": ratio,
        "mean_relative_error": relative,
        "detail": f"max error {ratio:.3f} quantization steps (bound 1.05), mean relative "
        f"{relative:.3f}",
    }


LOAD = "from mlx_lm import load, generate"
# The mlx probe's steps, named once: (step, check id, title, function). The probe runs them
# in order; the doctor's imports and mlx sections, its checks and the fingerprint read them.
MLX_STEPS = (
    ("import mlx", "imports.mlx", "import mlx", imported("mlx")),
    ("import mlx.core", "imports.mlx_core", "import mlx.core", imported("mlx.core")),
    ("import mlx_lm", "imports.mlx_lm", "import mlx_lm", imported("mlx_lm")),
    (LOAD, "imports.mlx_lm_load_generate", LOAD, imported("mlx_lm", "load", "generate")),
    ("mlx.array_ops", "mlx.array_ops", "array ops (matmul, sum)", array_ops),
    ("mlx.eval", "mlx.eval", "mx.eval", evaluate),
    ("mlx.lazy", "mlx.lazy", "lazy evaluation deferred", lazy),
    ("mlx.default_device", "mlx.default_device", "default device", default_device),
    ("mlx.device_info", "mlx.device_info", "mx.device_info()", device_info),
    ("mlx.quantize", "mlx.quantize", "quantize round trip (4-bit)", quantize_round_trip),
)


def probe_mlx() -> None:
    core_ok = True
    for step, _, _, function in MLX_STEPS:
        if step.startswith("mlx.") and not core_ok:
            emit(step, ok=False, error="not run: `import mlx.core` failed")
            continue
        if run_step(step, function) is None and step == "import mlx.core":
            core_ok = False


def main(argv: list) -> int:
    mode, *names = argv or ["env"]  # run_probe runs one mode at a time
    if mode == "files":
        verify_files(names)
    elif mode == "mlx":
        probe_mlx()
    elif mode == "env":
        run_step("env", environment)
    else:
        emit("error", ok=False, error=f"unknown probe mode {mode!r}")
        return 2
    return 0


@dataclass
class ProbeResult:
    """What the child reported: `steps` maps a step name to its fields (`ok`, `error`, ...)."""

    python: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    returncode: int | None = None
    stderr: str = ""

    def step(self, name: str) -> dict[str, Any] | None:
        return self.steps.get(name)


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "timed out"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def run_probe(
    python: str | None = None,
    modes: tuple[str, ...] = ("env",),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    expected_steps: tuple[str, ...] = (),
) -> ProbeResult:
    """Run the probe's `modes` with `python` (default: this one). A step that started but never
    reported (the child crashed or timed out in it) fails, naming how the child ended, with the
    tail of its stderr; the `expected_steps` that never started are marked as not run."""
    python = python or sys.executable
    result = ProbeResult(python=python)
    # Run by path, so the folder the user stands in is not on sys.path (a json.py or a stray
    # *.dist-info there would run or fake a package); PYTHONSAFEPATH (3.11+, ignored before)
    # leaves out the child's own folder too.
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        completed = subprocess.run(
            [python, __file__, *modes], capture_output=True, text=True, timeout=timeout, env=env
        )
        stdout, result.stderr = completed.stdout, completed.stderr
        result.returncode = completed.returncode
    except subprocess.TimeoutExpired as error:  # returncode stays None
        stdout, result.stderr = _text(error.stdout), _text(error.stderr)
    except OSError as error:
        stdout, result.stderr, result.returncode = "", f"could not run {python}: {error}", 127
    started: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith(STEP_PREFIX):
            continue
        try:
            fields = json.loads(line[len(STEP_PREFIX) :])
        except json.JSONDecodeError:
            continue
        step = str(fields.pop("step", ""))
        if step.endswith(":start"):
            started.append(step.removesuffix(":start"))
        else:
            result.steps[step] = fields
    if result.returncode != 0:
        how = f"the probe process ({python}) {_describe_exit(result.returncode)}"
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        for step in started:
            if step not in result.steps:
                result.steps[step] = {"ok": False, "error": f"{how} in this step: {tail}".strip()}
        for step in expected_steps:
            if step not in result.steps:
                result.steps[step] = {"ok": False, "error": f"not run: {how} earlier"}
    return result


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
