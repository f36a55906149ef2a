"""Will it fit, and how fast (issue 20): resident memory against mapped file pages, Linux's
one-mapping limit, context in the estimate, quantized folders checked before loading, the
decode ceiling, the router-safe 4-bit and `athena convert`.

Every shape is built here: OLMoE-1B-7B's as sparse files (one file, or six shards like the
hub's), quantized folders by a real `athena convert` of the tiny checkpoint, then damaged in
their headers. A machine's memory is a `MemoryBudget` passed in; a Mac is simulated through
the doctor's Host seam (the test names say so). Whatever could exhaust memory runs in a child
process under an address-space limit (RLIMIT_AS).
"""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from athena import preflight
from athena.checkpoints import write_sparse_olmoe
from athena.cli import main
from athena.errors import OversizeError, SourceError
from athena.host import Host, apple_bandwidth, machine_bandwidth
from athena.preflight import GiB, MemoryBudget
from athena.preflight.memory import linux_map_limit
from athena.preflight.quantized import quantized_problems
from athena.preflight.speed import bytes_per_token

MEMINFO_24 = (
    "MemTotal:       24683584 kB\nSwapTotal:       1048576 kB\nCommitLimit:    14439940 kB\n"
)
LINUX_24 = MemoryBudget(24 * GiB, map_limit=24 * GiB, map_limit_source="RAM, no swap (test)")


@pytest.fixture(scope="module")
def one_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OLMoE-1B-7B in float32, one 27.7 GB sparse file."""
    return write_sparse_olmoe(tmp_path_factory.mktemp("fit") / "one-file")


@pytest.fixture(scope="module")
def six_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OLMoE-1B-7B in float32 in six ~4.6 GB sparse shards with an index, as the hub ships."""
    return write_sparse_olmoe(tmp_path_factory.mktemp("fit") / "six-shards", shards=6)


def limited(gib: float) -> Any:
    """preexec_fn: cap the child's address space, so a regression fails there, not here."""

    def apply() -> None:
        limit = int(gib * GiB)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


# -- 1. resident memory decides; mapped file pages beside ------------------------------------


def test_sharded_writer_splits_like_the_hub_and_the_preflight_reads_it(six_shards: Path) -> None:
    files = sorted(p.name for p in six_shards.glob("model*.safetensors"))
    assert files == [f"model-{n:05d}-of-00006.safetensors" for n in range(1, 7)]
    index = json.loads((six_shards / "model.safetensors.index.json").read_text())
    info = preflight.inspect_model(str(six_shards))
    assert info.problems == []
    assert index["metadata"]["total_size"] == info.weight_bytes
    assert set(index["weight_map"].values()) == set(files)
    sizes = [(six_shards / f).stat().st_size for f in files]
    assert max(sizes) < 1.1 * info.weight_bytes / 6  # about equal shares
    assert info.parameters == 6_919_161_856


def test_sharded_real_shape_bf16_on_transformers_is_accepted_without_allow_oversize(
    six_shards: Path,
) -> None:
    """Measured (issue 20): 22.0 GiB peak on a 24 GB machine, anonymous about the 13.8 GB of
    bf16 weights. Before: 40.4 GiB estimated, 'does not fit'."""
    checked = preflight.check_load(
        str(six_shards), backend="transformers", dtype="bfloat16", budget=LINUX_24
    )
    assert checked is not None
    estimate = checked.estimate
    assert 13.8e9 < estimate.resident < 16 * GiB  # the bf16 copy + one layer's fused experts
    assert estimate.file_pages > checked.info.weight_bytes  # 27.7 GB + libraries: reclaimable
    assert estimate.peak == estimate.resident + estimate.file_pages > 24 * GiB
    assert LINUX_24.status(estimate.resident) == "fits"


def test_one_file_beyond_ram_plus_swap_is_refused_on_transformers_even_with_allow_oversize(
    one_file: Path,
) -> None:
    limit, said = linux_map_limit(24 * GiB, MEMINFO_24, "0\n")
    budget = MemoryBudget(24 * GiB, map_limit=limit, map_limit_source=said)
    for allow in (False, True):
        with pytest.raises(OversizeError) as raised:
            preflight.check_load(
                str(one_file),
                backend="transformers",
                dtype="bfloat16",
                budget=budget,
                allow_oversize=allow,
            )
        assert str(raised.value) == (
            f"{one_file}'s model.safetensors is 25.8 GiB, one file larger than the 25.0 GiB "
            "Linux lets a process map (vm.overcommit_memory=0: RAM plus 1.0 GiB of swap), so "
            "transformers (which memory-maps each weights file whole) cannot load it here, "
            "with or without allow_oversize; load it with mlx, or use a copy sharded into "
            "files under 25.0 GiB (as the hub ships it)"
        )
    # mlx reads the file (no private mapping of it): its 4-bit load is not concerned.
    assert preflight.check_load(str(one_file), backend="mlx", quantize_bits=4, budget=budget)


def test_one_file_refusal_names_the_limit() -> None:
    """linux_map_limit on /proc texts: mode 0 = RAM + swap, 2 = CommitLimit, 1 = none."""
    assert linux_map_limit(24 * GiB, MEMINFO_24, "0") == (
        25 * GiB,
        "vm.overcommit_memory=0: RAM plus 1.0 GiB of swap",
    )
    assert linux_map_limit(24 * GiB, MEMINFO_24, "2") == (
        14439940 * 1024,
        "vm.overcommit_memory=2: the CommitLimit",
    )
    assert linux_map_limit(24 * GiB, MEMINFO_24, "1") == (None, None)
    assert linux_map_limit(24 * GiB, "MemTotal: 1 kB\n", "0")[1] == (
        "vm.overcommit_memory=0: RAM, no swap"
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_this_linux_machine_budget_has_its_map_limit() -> None:
    mode = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    budget = preflight.machine_budget()
    if mode == "1":
        assert budget.map_limit is None
    else:
        assert budget.map_limit is not None and budget.map_limit_source is not None


def test_a_simulated_mac_has_no_map_limit() -> None:
    mac = Host(system="Darwin", machine="arm64", os_version="15.3.1", total_memory=16 * GiB)
    budget = preflight.machine_budget(mac)
    assert budget.map_limit is None


LOAD_IN_CHILD = """
import json, os, sys
real_sysconf = os.sysconf  # a 16 GiB machine: this child patches its own os.sysconf
os.sysconf = lambda name: (
    16 * 2**30 // real_sysconf("SC_PAGE_SIZE") if name == "SC_PHYS_PAGES" else real_sysconf(name)
)
from athena.models.olmoe import OLMoEConfig, OLMoEModel
model = OLMoEModel(OLMoEConfig(model_name=sys.argv[1], use_mlx=False, dtype="bfloat16"))
print(json.dumps({"ok": model.load(), "error": model.load_error,
                  "torch": "torch" in sys.modules}))
"""


@pytest.mark.linux("Linux's overcommit rule, and a RAM size set through os.sysconf")
def test_one_file_refusal_on_a_real_load_in_a_memory_limited_child(one_file: Path) -> None:
    """Through OLMoEModel.load() under a 3 GiB address-space cap: refused before torch is
    imported (a regression would try to map 27.7 GB and fail in the child, not here)."""
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1":
        pytest.skip("vm.overcommit_memory=1: Linux maps a file of any size")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_CHILD, str(one_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=limited(3),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["torch"] is False
    limit, _ = linux_map_limit(16 * GiB)
    assert f"one file larger than the {preflight.gib(limit)} Linux lets a process map" in str(
        report["error"]
    )


# -- 2. context --------------------------------------------------------------------------------


def test_context_adds_the_kv_cache_and_attention(six_shards: Path) -> None:
    info = preflight.inspect_model(str(six_shards))
    load = preflight.estimate_peak(info, backend="mlx", quantize_bits=4, on_cpu=True)
    at_4k = preflight.estimate_peak(info, backend="mlx", quantize_bits=4, on_cpu=True, context=4096)
    assert load.context == 0 and at_4k.context_tokens == 4096
    assert at_4k.resident == load.resident + at_4k.context
    kv_cache = 2 * 16 * 4096 * 2048 * 4  # K and V, 16 layers, 4096 tokens, float32 on CPU
    assert kv_cache < at_4k.context < kv_cache + 1 * GiB
    bf16 = preflight.estimate_peak(info, backend="transformers", dtype="bfloat16", context=4096)
    assert bf16.context > 2 * 16 * 4096 * 2048 * 2  # bf16 cache; full (unchunked) attention


def test_a_long_generation_gets_the_length_that_fits(six_shards: Path) -> None:
    budget = MemoryBudget(6 * GiB)  # 4.6 GiB stay after the 4-bit load, 1.4 GiB beside it
    checked = preflight.check_load(str(six_shards), backend="mlx", quantize_bits=4, budget=budget)
    assert checked is not None
    checked.check_input(1000, new_tokens=100, chunked=True)  # fits
    with pytest.raises(ValueError) as raised:
        checked.check_input(4000, new_tokens=96, chunked=True)
    message = str(raised.value)
    assert message.startswith("the prompt is 4000 tokens plus 96 to generate; running the model ")
    length = int(message.rsplit("at most ", 1)[1].split()[0])
    assert 0 < length < 4000
    checked.check_input(length, new_tokens=96, chunked=True)  # the named length fits
    with pytest.raises(ValueError):
        checked.check_input(length + 1, new_tokens=96, chunked=True)


def test_an_encode_batch_gets_the_batch_size_that_fits(six_shards: Path) -> None:
    checked = preflight.check_load(
        str(six_shards), backend="mlx", quantize_bits=4, budget=MemoryBudget(12 * GiB)
    )
    assert checked is not None
    with pytest.raises(ValueError) as raised:
        checked.check_input(4096, what="the longest text", rows=32)
    message = str(raised.value)
    assert message.startswith("the longest text is 4096 tokens (in a batch of 32); ")
    batch = int(message.rsplit("batch size of at most ", 1)[1])
    assert 1 <= batch < 32
    checked.check_input(4096, what="the longest text", rows=batch)
    with pytest.raises(ValueError):
        checked.check_input(4096, what="the longest text", rows=batch + 1)


def test_inspect_context_default_and_asked(
    six_shards: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    machine_memory: Callable[[int], None],
) -> None:
    machine_memory(24 * GiB)
    monkeypatch.setenv("ATHENA_CACHE_DIR", str(six_shards.parent / "cache"))
    main(["inspect", str(six_shards), "--json", "--backend", "mlx", "--quantize-bits", "4"])
    data = json.loads(capsys.readouterr().out)
    assert data["context"] == {"tokens": 4096, "source": "max_position_embeddings"}
    assert data["ok"] is True
    main(["inspect", str(six_shards), "--json", "--context", "0"])
    zero = json.loads(capsys.readouterr().out)
    assert zero["context"] == {"tokens": 0, "source": "--context"}
    for row, at_zero in zip(data["estimates"], zero["estimates"], strict=True):
        assert row["resident"] == at_zero["resident"] + row["context"] > at_zero["resident"]
    code = main(["inspect", str(six_shards), "--backend", "mlx", "--quantize-bits", "4",
                 "--context", "4096", "--json"])  # fmt: skip
    assert code == 0
    capsys.readouterr()
    text_code = main(["inspect", str(six_shards), "--context", "2048", "--quantize-bits", "4",
                      "--backend", "mlx"])  # fmt: skip
    out = capsys.readouterr().out
    assert text_code == 0
    assert "memory of a load at 2048 tokens of context (asked;" in out
    assert "quantize_bits=4 (router 8-bit)" in out


# -- 3. decode ceiling -----------------------------------------------------------------------


def test_decode_ceiling_reads_only_the_active_weights(six_shards: Path) -> None:
    info = preflight.inspect_model(str(six_shards))
    bf16 = preflight.estimate_peak(info, backend="transformers", dtype="bfloat16")
    q4 = preflight.estimate_peak(info, backend="mlx", quantize_bits=4, on_cpu=False)
    q8 = preflight.estimate_peak(info, backend="mlx", quantize_bits=8, on_cpu=False)
    # Attention 16 x 4 x 2048^2, 8 of 64 experts x 3 x 2048 x 1024 per layer, the router,
    # the output head 50304 x 2048, one embedding row, the norms: 1.18 B of 6.92 B.
    per_layer = 4 * 2048**2 + 8 * 3 * 2048 * 1024 + 64 * 2048 + 4 * 2048
    active = 16 * per_layer + 50304 * 2048 + 2048 + 2048
    assert bytes_per_token(info, bf16) == 2 * active
    assert bytes_per_token(info, q4) < bytes_per_token(info, q8) < bytes_per_token(info, bf16)
    assert 0.5 * active < bytes_per_token(info, q4) < 0.7 * active  # 4 bits + scales, router 8


def test_bandwidth_of_a_simulated_m3_pro_is_apples_published_figure() -> None:
    mac = Host(
        system="Darwin", machine="arm64", os_version="15.3.1", total_memory=36 * GiB,
        chip="Apple M3 Pro",
    )  # fmt: skip
    bandwidth = machine_bandwidth(mac)
    assert bandwidth is not None
    assert (bandwidth.bytes_per_second, bandwidth.source) == (150e9, "estimated")
    assert apple_bandwidth("Apple M4 Max") is not None
    assert apple_bandwidth("Intel(R) Xeon(R)") is None


def test_bandwidth_here_is_measured_once_and_cached_with_its_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATHENA_CACHE_DIR", str(tmp_path))
    linux = Host(system="Linux", machine="x86_64", os_version="6", total_memory=24 * GiB)
    assert machine_bandwidth(linux, measure=False) is None
    first = machine_bandwidth(linux)
    assert first is not None and first.source == "measured" and first.bytes_per_second > 1e8
    cached = json.loads((tmp_path / "bandwidth.json").read_text())
    assert cached["bytes_per_second"] == first.bytes_per_second and len(cached["date"]) == 10
    again = machine_bandwidth(linux, measure=False)
    assert again is not None and again.bytes_per_second == first.bytes_per_second
    assert cached["date"] in again.detail and "cached" in again.detail


def test_inspect_json_carries_the_ceiling(
    six_shards: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    machine_memory: Callable[[int], None],
) -> None:
    machine_memory(24 * GiB)
    monkeypatch.setenv("ATHENA_CACHE_DIR", str(six_shards.parent / "cache"))
    main(["inspect", str(six_shards), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["bandwidth"]["source"] == "measured"
    for row in data["estimates"]:
        ceiling = row["decode_ceiling"]
        assert ceiling["source"] == "measured"
        expected = data["bandwidth"]["bytes_per_second"] / ceiling["bytes_per_token"]
        assert ceiling["tokens_per_second"] == round(expected, 1)


# -- 5. quantized folders, 6. router-safe 4-bit and convert ------------------------------------


@pytest.fixture(scope="module")
def converted(tiny_olmoe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mlx_lm")
    out = tmp_path_factory.mktemp("convert") / "olmoe-tiny-4bit"
    assert main(["convert", str(tiny_olmoe), str(out)]) == 0
    return out


def _rewrite_header(file: Path, change: Any) -> None:
    """Rewrite a safetensors file's header through `change(header)` (shapes changed, tensors
    removed), its offsets recomputed so that it stays well-formed, as a sparse file (the
    preflight reads headers only)."""
    itemsize = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4}
    with file.open("rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
    change(header)
    offset = 0
    tensors = sorted(
        (k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0]
    )
    for name in tensors:
        entry = header[name]
        nbytes = itemsize[entry["dtype"]]
        for dim in entry["shape"]:
            nbytes *= dim
        entry["data_offsets"] = [offset, offset + nbytes]
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with file.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        f.truncate(8 + len(encoded) + offset)


def _copy(folder: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, to))


@pytest.mark.mlx
def test_convert_keeps_the_router_at_8_bits_and_loads(converted: Path) -> None:
    config = json.loads((converted / "config.json").read_text())
    quant = config["quantization"]
    assert (quant["bits"], quant["group_size"]) == (4, 64)
    routers = {k: v for k, v in quant.items() if k.endswith("mlp.gate")}
    assert routers and all(v["bits"] == 8 for v in routers.values())
    info = preflight.inspect_model(str(converted))
    assert info.problems == [] and quantized_problems(info) == []
    estimate = preflight.estimate_peak(info, backend="mlx")
    assert (estimate.quantize_bits, estimate.router_bits) == (4, 8)
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(OLMoEConfig(model_name=str(converted), allow_fallback=False))
    assert model.load(), model.load_error
    gate = model.model.model.layers[0].mlp.gate
    assert (type(gate).__name__, gate.bits) == ("QuantizedLinear", 8)
    assert model.model.model.layers[0].mlp.switch_mlp.gate_proj.bits == 4
    assert model.generate("The quick", max_tokens=3)


@pytest.mark.mlx
def test_quantize_at_load_keeps_the_router_at_8_bits(tiny_olmoe: Path) -> None:
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(
        OLMoEConfig(model_name=str(tiny_olmoe), quantize_bits=4, allow_fallback=False)
    )
    assert model.load(), model.load_error
    layer = model.model.model.layers[0]
    assert layer.mlp.gate.bits == 8  # the router
    assert layer.mlp.switch_mlp.up_proj.bits == layer.self_attn.q_proj.bits == 4


@pytest.mark.mlx
def test_convert_refuses_a_folder_with_files_and_a_quantized_source(
    converted: Path, tiny_olmoe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(tiny_olmoe), str(converted)]) == 1
    assert capsys.readouterr().err == (
        f"athena convert: {converted} is not empty; choose a new or empty folder for the copy\n"
    )
    assert main(["convert", str(converted), str(tmp_path / "again")]) == 1
    assert "is already mlx-quantized" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folder or lock left


@pytest.mark.mlx
def test_convert_with_router_bits_4_quantizes_it_like_the_rest(
    tiny_olmoe: Path, tmp_path: Path
) -> None:
    out = tmp_path / "q4-router4"
    assert main(["convert", str(tiny_olmoe), str(out), "--router-bits", "4"]) == 0
    quant = json.loads((out / "config.json").read_text())["quantization"]
    assert not any(k.endswith("mlp.gate") for k in quant)


@pytest.mark.mlx
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            {"group_size": 32},
            "lm_head.scales has shape [320, 1], but lm_head.weight [320, 8] at 4 bits and "
            "group size 32 (from config.json) needs [320, 2]; config.json's bits or group_size "
            "do not match these weights: fix config.json or re-convert the model",
        ),
        ({"bits": 8}, "at 8 bits and group size 64 (from config.json) needs"),
        ({"mode": "q4_k"}, "with mode 'q4_k', which mlx cannot load (it loads affine, mxfp4"),
        ({"bits": 7}, "with mode 'affine', bits 7, group size 64; mlx's affine takes bits"),
    ],
)
def test_quantized_folder_whose_config_disagrees_is_one_sentence(
    converted: Path, tmp_path: Path, damage: dict[str, Any], expected: str
) -> None:
    folder = _copy(converted, tmp_path / "damaged")
    config = json.loads((folder / "config.json").read_text())
    config["quantization"].update(damage)
    if "group_size" in damage or "bits" in damage:  # the layers without an override
        for value in list(config["quantization"].values()):
            if isinstance(value, dict) and "group_size" in damage:
                value["group_size"] = damage["group_size"]
    (folder / "config.json").write_text(json.dumps(config))
    info = preflight.inspect_model(str(folder))
    [first, *_] = quantized_problems(info)
    assert expected in first
    with pytest.raises(SourceError) as raised:
        preflight.check_load(str(folder), backend="mlx", budget=LINUX_24)
    assert str(raised.value) == first


@pytest.mark.mlx
def test_quantized_folder_with_a_wrong_scale_shape_or_no_biases(
    converted: Path, tmp_path: Path
) -> None:
    folder = _copy(converted, tmp_path / "wrong-scales")
    target = "model.layers.1.self_attn.q_proj"

    def shrink(header: dict[str, Any]) -> None:
        header[f"{target}.scales"]["shape"][-1] += 1

    _rewrite_header(folder / "model.safetensors", shrink)
    info = preflight.inspect_model(str(folder))
    [problem] = quantized_problems(info)
    assert problem.startswith(f"{target}.scales has shape [64, 2], but {target}.weight [64, 8] ")
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(OLMoEConfig(model_name=str(folder), allow_fallback=False))
    assert model.load() is False and model.load_error == problem  # before mlx reads a weight

    no_biases = _copy(converted, tmp_path / "no-biases")
    _rewrite_header(no_biases / "model.safetensors", lambda h: h.pop(f"{target}.biases"))
    [problem] = quantized_problems(preflight.inspect_model(str(no_biases)))
    assert problem == (
        f"{target}.weight is packed (4-bit) but {target}.biases is missing; the folder is "
        "incomplete: re-convert or re-download it"
    )
