"""The preflight (issue 16): a model folder that is incomplete, inconsistent or too big for
the machine is one sentence before any backend is imported or any weight is read.

"This machine's memory" is deterministic in these tests: a `MemoryBudget` passed in, or
`preflight.machine_budget` replaced; a Mac is simulated through the doctor's Host seam (the
test names say "simulated"). Bad folders are made here, from a copy of the tiny checkpoint or
as a sparse real-shape OLMoE-1B-7B (header + truncate: 27.7 GB long, no disk used).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from athena import preflight, source
from athena.checkpoints import VOCAB_SIZE, count_parameters, write_sparse_olmoe
from athena.errors import LoadError, OversizeError
from athena.host import Host, Metal, installed_backends
from athena.models.olmoe import OLMoEConfig, OLMoEModel
from athena.preflight import GiB, MemoryBudget, MiB

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("weight_reads", HERE / "weight_reads.py")
assert _spec is not None and _spec.loader is not None
weight_reads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(weight_reads)

LINUX_24 = MemoryBudget(24 * GiB)
OLMOE_PARAMETERS = 6_919_161_856


def simulated_mac(memory_gib: int, working_set: int | None = None) -> Host:
    metal = None
    if working_set is not None:
        metal = Metal(True, {"max_recommended_working_set_size": working_set})
    return Host(
        system="Darwin",
        machine="arm64",
        os_version="15.3.1",
        total_memory=memory_gib * GiB,
        sysctl={"iogpu.wired_limit_mb": "0"},
        metal=metal,
    )


@pytest.fixture(scope="module")
def olmoe_1b_7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OLMoE-1B-7B's shape in float32 as a sparse file: 27.7 GB long, a few KB on disk."""
    return write_sparse_olmoe(tmp_path_factory.mktemp("sparse") / "olmoe-1b-7b")


@pytest.fixture
def budget_24gib(machine_memory: Callable[[int], None]) -> None:
    machine_memory(24 * GiB)


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _athena_messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name.startswith("athena") and r.levelno >= level
    ]


# -- what a folder holds -------------------------------------------------------------------


def test_inspect_reads_parameters_dtype_bytes_and_tokenizer(tiny_olmoe: Path) -> None:
    info = preflight.inspect_model(str(tiny_olmoe))
    assert info.ok and info.problems == []
    assert info.parameters == count_parameters("tiny")
    assert info.stored_dtypes == {"float32": 4 * count_parameters("tiny")}
    assert info.disk_bytes == (tiny_olmoe / "model.safetensors").stat().st_size
    assert (info.tokenizer.kind, info.tokenizer.vocab, info.tokenizer.max_id) == (
        "tokenizer.json",
        VOCAB_SIZE,
        VOCAB_SIZE - 1,
    )


def test_real_shape_checkpoint_is_known_from_its_header_alone(olmoe_1b_7b: Path) -> None:
    """What made it take milliseconds (the issue's bound was 2 s): of 27.7 GB, only the
    ~400 KB header is read."""
    weights = olmoe_1b_7b / "model.safetensors"
    assert weights.stat().st_size > 27.6e9
    assert weights.stat().st_blocks * 512 < 10 * MiB  # sparse: no disk used
    with weight_reads.watching() as reads:
        info = preflight.inspect_model(str(olmoe_1b_7b))
    assert info.parameters == OLMOE_PARAMETERS
    assert info.weight_bytes == 4 * OLMOE_PARAMETERS
    assert info.ok
    assert reads.furthest == {str(weights): weight_reads.header_end(weights)}


# -- config and weights disagree -----------------------------------------------------------

MISMATCHES = {
    "layer count": (
        {"num_hidden_layers": 3},
        "num_hidden_layers is 3 but the weights have 2 layers",
    ),
    "absurd layer count": (
        {"num_hidden_layers": 1_000_000_000},
        "num_hidden_layers is 1000000000 but the weights have 2 layers",
    ),
    "hidden size": (
        {"hidden_size": 128},
        "hidden_size is 128 but the weights have a hidden size of 64",
    ),
    "experts": ({"num_experts": 4}, "num_experts is 4 but the weights have 8 experts per layer"),
    "vocabulary": (
        {"vocab_size": VOCAB_SIZE + 10},
        f"vocab_size is {VOCAB_SIZE + 10} but the weights have {VOCAB_SIZE} embedding rows "
        "(vocabulary)",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES), ids=lambda c: c.replace(" ", "-"))
def test_config_that_disagrees_with_the_weights_names_the_field_and_both_values(
    case: str, copy_of_tiny: Path
) -> None:
    changes, middle = MISMATCHES[case]
    _edit_config(copy_of_tiny, **changes)
    info = preflight.inspect_model(str(copy_of_tiny))
    assert info.problems == [
        f"config.json in {copy_of_tiny} says {middle}; the config does not belong to these "
        "weights (fix config.json or re-create the checkpoint)"
    ]


def test_config_with_a_size_that_is_not_a_positive_integer(copy_of_tiny: Path) -> None:
    _edit_config(copy_of_tiny, num_experts=0)
    assert preflight.inspect_model(str(copy_of_tiny)).problems == [
        f"config.json in {copy_of_tiny} has num_experts=0; it must be a positive integer "
        "(fix config.json)"
    ]


LOAD_IN_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[3])
from weight_reads import watching
import os
real_sysconf = os.sysconf  # a 24 GiB machine (Linux): this child patches its own os.sysconf
os.sysconf = lambda name: (
    24 * 2**30 // real_sysconf("SC_PAGE_SIZE") if name == "SC_PHYS_PAGES" else real_sysconf(name)
)
from athena.models.olmoe import OLMoEConfig, OLMoEModel
with watching() as reads:
    model = OLMoEModel(OLMoEConfig(model_name=sys.argv[1], use_mlx=sys.argv[2] == "mlx"))
    ok = model.load()
print(json.dumps({"ok": ok, "error": model.load_error, "read": reads.furthest,
                  "backends": sorted(m for m in ("mlx", "mlx_lm", "torch", "transformers")
                                     if m in sys.modules)}))
"""


def load_in_child(folder: Path, backend: str) -> dict[str, Any]:
    """`OLMoEModel.load()` in a fresh interpreter of 24 GiB RAM (on Linux); asserts that the
    child exited normally."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_CHILD, str(folder), backend, str(HERE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("backend", ["mlx", "transformers"])
def test_absurd_layer_count_is_a_sentence_not_a_native_abort_in_a_child_process(
    backend: str, copy_of_tiny: Path
) -> None:
    """Before issue 16 the mlx path aborted with std::bad_alloc and transformers kept
    building for minutes: run it where a crash cannot take the test runner down."""
    _edit_config(copy_of_tiny, num_hidden_layers=1_000_000_000)
    report = load_in_child(copy_of_tiny, backend)
    assert report["ok"] is False
    assert report["error"].startswith(
        f"config.json in {copy_of_tiny} says num_hidden_layers is 1000000000 but the weights "
        "have 2 layers"
    )
    assert report["backends"] == []  # refused before either backend was imported
    weights = copy_of_tiny / "model.safetensors"
    assert report["read"] == {str(weights): weight_reads.header_end(weights)}  # no weight


# -- the tokenizer ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_mlx", [True, False], ids=["default", "use_mlx-false"])
def test_weights_only_folder_is_refused_before_loading(
    copy_of_tiny: Path,
    use_mlx: bool,
    loader_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partial download (weights, no tokenizer) used to load, and fail at generate()."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (copy_of_tiny / name).unlink()
    model = OLMoEModel(OLMoEConfig(model_name=str(copy_of_tiny), use_mlx=use_mlx))
    # Refused before any backend: none can be imported here, and no weight is read.
    for backend in ("mlx", "mlx.core", "mlx_lm", "torch", "transformers"):
        monkeypatch.setitem(sys.modules, backend, None)  # `import` raises ImportError
    with weight_reads.watching() as reads:
        assert model.load() is False
    weights = copy_of_tiny / "model.safetensors"
    assert reads.furthest == {str(weights): weight_reads.header_end(weights)}
    sentence = (
        f"{copy_of_tiny} has no tokenizer (none of tokenizer.json, vocab.json + merges.txt, "
        "tokenizer.model); the download is incomplete: re-download the folder or copy the "
        "tokenizer files next to config.json"
    )
    assert model.load_error == sentence
    assert _athena_messages(loader_log, logging.WARNING) == [sentence]


def test_tokenizer_larger_than_the_vocabulary_is_refused(copy_of_tiny: Path) -> None:
    tokenizer = json.loads((copy_of_tiny / "tokenizer.json").read_text())
    tokenizer["added_tokens"].append(
        {
            "id": VOCAB_SIZE,
            "content": "<|extra|>",
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
    )
    (copy_of_tiny / "tokenizer.json").write_text(json.dumps(tokenizer))
    model = OLMoEModel(OLMoEConfig(model_name=str(copy_of_tiny)))
    assert model.load() is False
    assert model.load_error == (
        f"the tokenizer in {copy_of_tiny} has ids up to {VOCAB_SIZE} but config.json's "
        f"vocab_size is {VOCAB_SIZE}, so id {VOCAB_SIZE} has no embedding row; use the tokenizer "
        "that belongs to these weights"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "{not json",
            "tokenizer.json in {folder} is not valid JSON (Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1)); re-download or re-create it",
        ),
        (
            '{"version": "1.0"}',
            "the tokenizer.json in {folder} does not load (not a tokenizer's JSON); re-download "
            "or re-create it",
        ),
    ],
)
def test_tokenizer_that_does_not_load_is_refused(
    copy_of_tiny: Path, text: str, problem: str
) -> None:
    (copy_of_tiny / "tokenizer.json").write_text(text)
    assert preflight.inspect_model(str(copy_of_tiny)).problems == [
        problem.format(folder=copy_of_tiny)
    ]


def test_sharded_folder_with_a_missing_shard_is_refused(copy_of_tiny: Path) -> None:
    index = {
        "metadata": {"total_size": 1},
        "weight_map": {
            "model.embed_tokens.weight": "model.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
        },
    }
    (copy_of_tiny / "model.safetensors.index.json").write_text(json.dumps(index))
    assert preflight.inspect_model(str(copy_of_tiny)).problems[0] == (
        f"{copy_of_tiny} lacks model-00002-of-00002.safetensors (model.safetensors.index.json "
        "lists 2 weight files); the download is incomplete, re-download the folder"
    )


def test_weights_file_the_index_does_not_list_is_refused(copy_of_tiny: Path) -> None:
    """A shard left over from another download: mlx-lm loads every model*.safetensors, so its
    weights would silently replace the listed ones (transformers reads only the listed)."""
    header = source.read_safetensors_header(copy_of_tiny / "model.safetensors")
    index = {"weight_map": dict.fromkeys(header, "model.safetensors")}
    (copy_of_tiny / "model.safetensors.index.json").write_text(json.dumps(index))
    shutil.copy(copy_of_tiny / "model.safetensors", copy_of_tiny / "model-old.safetensors")
    assert preflight.inspect_model(str(copy_of_tiny)).problems == [
        f"{copy_of_tiny} has model-old.safetensors, which model.safetensors.index.json does not "
        "list (a leftover of another download or conversion?); remove it or re-download the "
        "folder"
    ]
    (copy_of_tiny / "model-old.safetensors").unlink()
    assert preflight.inspect_model(str(copy_of_tiny)).problems == []


# -- memory ----------------------------------------------------------------------------------


def test_real_shape_float32_on_24_gib_is_refused_with_the_options_that_fit(
    olmoe_1b_7b: Path,
) -> None:
    with pytest.raises(OversizeError) as raised:
        preflight.check_load(str(olmoe_1b_7b), backend="mlx", budget=LINUX_24)
    info = preflight.inspect_model(str(olmoe_1b_7b))
    needs = preflight.estimate_peak(info, backend="mlx", on_cpu=True)
    q8 = preflight.estimate_peak(info, backend="mlx", quantize_bits=8, on_cpu=True)
    q4 = preflight.estimate_peak(info, backend="mlx", quantize_bits=4, on_cpu=True)
    bf16 = preflight.estimate_peak(info, backend="transformers", dtype="bfloat16")
    assert str(raised.value) == (
        f"{olmoe_1b_7b} needs about {preflight.gib(needs.resident)} to load with mlx "
        "(dtype='float32'), more than this machine's 24.0 GiB of memory; options that fit: "
        f"dtype='bfloat16' with transformers ({preflight.gib(bf16.resident)}), "
        f"quantize_bits=8 ({preflight.gib(q8.resident)}), quantize_bits=4 "
        f"({preflight.gib(q4.resident)}); or pass allow_oversize=True (--allow-oversize) to load "
        "it anyway"
    )
    # transformers' bf16 copy must stay (13.8 GB); the 27.7 GB of mapped file pages need not.
    assert bf16.resident < 16 * GiB < 24 * GiB < bf16.peak
    assert bf16.file_pages > info.weight_bytes  # and the libraries' code
    # The weights (25.8 GiB) plus one stacked expert tensor's sources plus the runtime.
    assert 4 * OLMOE_PARAMETERS < needs.peak < 4 * OLMOE_PARAMETERS + 2 * GiB
    assert 4 * GiB < q4.peak < 7 * GiB  # "with quantize_bits=4 it needs about 6 GB"


def test_real_shape_on_a_simulated_64_gib_mac_fits_and_on_32_gib_is_tight(
    olmoe_1b_7b: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On Metal nothing is upcast; 48 GiB is the working set Metal recommends on 64 GiB."""
    big = preflight.machine_budget(simulated_mac(64, working_set=48 * GiB))
    assert (big.physical, big.recommended) == (64 * GiB, 48 * GiB)
    info = preflight.inspect_model(str(olmoe_1b_7b))
    float32 = preflight.estimate_peak(info, backend="mlx", on_cpu=False)
    assert big.status(float32.peak) == "fits"
    # 32 GiB without a probe: macOS's default share (2/3) is the working set.
    small = preflight.machine_budget(simulated_mac(32))
    assert small.recommended == int(32 * GiB * 2 / 3)
    assert small.status(float32.peak) == "tight"
    caplog.set_level(logging.WARNING, logger="athena")
    checked = preflight.check_load(str(olmoe_1b_7b), backend="mlx", budget=small)
    assert checked is not None and checked.estimate.peak == float32.peak
    [warning] = _athena_messages(caplog, logging.WARNING)
    assert "it loads, but other programs may be pushed to swap" in warning


def test_allow_oversize_passes_the_check_with_a_warning(
    olmoe_1b_7b: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="athena")
    checked = preflight.check_load(
        str(olmoe_1b_7b), backend="mlx", budget=LINUX_24, allow_oversize=True
    )
    assert checked is not None and checked.budget.status(checked.estimate.peak) == "does not fit"
    [warning] = _athena_messages(caplog, logging.WARNING)
    assert warning.endswith("loading anyway (allow_oversize=True)")


@pytest.mark.linux("the child sets its RAM through os.sysconf, which macOS's probe does not read")
@pytest.mark.parametrize("backend", ["mlx", "transformers"])
def test_real_shape_load_on_24_gib_is_refused_from_the_header_in_a_child_process(
    olmoe_1b_7b: Path, backend: str
) -> None:
    """Before issue 16: a segmentation fault after 51 s at 16 GB (mlx), an allocator refusal
    (transformers). Now load() is False before any backend is imported or any weight read
    (what makes it take milliseconds)."""
    report = load_in_child(olmoe_1b_7b, backend)
    assert report["ok"] is False
    error = report["error"]
    if backend == "transformers" and "Linux lets a process map" in error:
        assert error.startswith(f"{olmoe_1b_7b}'s model.safetensors is 25.8 GiB")  # no swap
    else:
        assert error.startswith(f"{olmoe_1b_7b} needs about ")
        assert "more than this machine's 24.0 GiB of memory; " in error
    if installed_backends()[:1] == ["mlx"] and backend == "mlx":  # quantization is the way out
        assert "options that fit: " in error and "quantize_bits=8 (" in error
    assert report["backends"] == []
    weights = olmoe_1b_7b / "model.safetensors"
    assert report["read"] == {str(weights): weight_reads.header_end(weights)}  # of 27.7 GB


@pytest.mark.mlx
def test_oversize_refusal_and_allow_oversize_on_a_real_load_simulated_small_machine(
    tiny_olmoe: Path, mlx_installed: None, machine_memory: Callable[[int], None]
) -> None:
    """The tiny checkpoint against a made-up 100 MiB machine: refused; allow_oversize loads
    it for real; a budget between the working set and RAM loads with a warning."""
    machine_memory(100 * MiB)
    refused = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), allow_fallback=False))
    assert refused.load() is False
    assert "more than this machine's 100 MiB of memory" in str(refused.load_error)
    allowed = OLMoEModel(
        OLMoEConfig(model_name=str(tiny_olmoe), allow_fallback=False, allow_oversize=True)
    )
    assert allowed.load(), allowed.load_error
    assert allowed.generate("Hi", max_tokens=2)


def test_tight_budget_loads_with_a_warning(
    tiny_olmoe: Path, loader_log: pytest.LogCaptureFixture
) -> None:
    tight = MemoryBudget(2 * GiB, 300 * MiB, "mx.device_info")
    checked = preflight.check_load(str(tiny_olmoe), backend="mlx", budget=tight)
    assert checked is not None
    [warning] = _athena_messages(loader_log, logging.WARNING)
    assert warning.startswith(f"{tiny_olmoe} needs about ")
    assert "above 300 MiB (mx.device_info)" in warning


@pytest.mark.mlx
def test_oversize_on_mlx_does_not_try_transformers_when_it_would_not_fit_simulated(
    tiny_olmoe: Path,
    mlx_installed: None,
    loader_log: pytest.LogCaptureFixture,
    machine_memory: Callable[[int], None],
) -> None:
    """Here mlx needs ~600 MiB, transformers ~750 MiB (its runtime is bigger): on a 100 MiB
    machine mlx is refused, and transformers is not tried."""
    info = preflight.inspect_model(str(tiny_olmoe))
    assert (
        preflight.estimate_peak(info, backend="mlx").resident
        < preflight.estimate_peak(info, backend="transformers").resident
    )
    machine_memory(100 * MiB)
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is False
    assert str(model.load_error).startswith(f"{tiny_olmoe} needs about ")
    assert "to load with mlx" in str(model.load_error)  # no pointless transformers attempt
    assert _athena_messages(loader_log, logging.WARNING) == [model.load_error]


@pytest.mark.linux("mlx's CPU build upcasts bfloat16 to float32; Metal does not")
def test_oversize_on_mlx_says_whether_transformers_would_fit(tmp_path: Path) -> None:
    """Not a SourceError: transformers may need less (it keeps bf16 where mlx's CPU upcasts
    to float32), and load() falls back to it when `fallback_fits`."""
    bf16 = write_sparse_olmoe(tmp_path / "bf16", dtype="bfloat16")
    with pytest.raises(OversizeError) as raised:
        preflight.check_load(str(bf16), backend="mlx", budget=LINUX_24, mlx_available=False)
    assert raised.value.fallback_fits is True
    with pytest.raises(OversizeError) as raised:
        preflight.check_load(str(bf16), backend="mlx", budget=MemoryBudget(8 * GiB))
    assert raised.value.fallback_fits is False


# -- inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["mlx_model", "torch_model"])
def test_prompt_beyond_max_position_embeddings_is_one_sentence(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    model: OLMoEModel = request.getfixturevalue(fixture)
    prompt = "\u00e9\u00df" * 2500  # two-byte characters the tiny BPE does not merge
    tokens = len(model.tokenize(prompt))
    assert tokens > 4096
    for call in (
        lambda: model.generate(prompt, max_tokens=2),
        lambda: "".join(model.stream(prompt, max_tokens=2)),
    ):
        with pytest.raises(ValueError) as raised:
            call()
        assert str(raised.value) == (
            f"the prompt is {tokens} tokens, beyond the model's max_position_embeddings (4096); "
            "shorten it to at most 4096 tokens"
        )


def test_attention_memory_beyond_the_budget_is_one_sentence() -> None:
    """50k tokens of full attention over 4 heads: 40 GB of scores, more than 24 GiB (mlx's
    encode() of ~40k tokens ended in a segmentation fault)."""
    config = {**_tiny_config(), "max_position_embeddings": 131072}
    with pytest.raises(ValueError) as raised:
        preflight.check_sequence(config, 50_000, what="the text", budget=LINUX_24)
    message = str(raised.value)
    assert message.startswith("the text is 50000 tokens; running the model over it needs about ")
    assert "more than the 24.0 GiB this machine has beside the model; shorten it to at most" in (
        message
    )
    longest = int(message.rsplit("at most ", 1)[1].split()[0])
    preflight.check_sequence(config, longest, budget=LINUX_24)  # the advice is right
    with pytest.raises(ValueError):
        preflight.check_sequence(config, longest + 1, budget=LINUX_24)
    # mlx-lm's generate prefills 2048 tokens at a time: the same prompt fits there.
    preflight.check_sequence(config, 50_000, budget=LINUX_24, query_chunk=2048)


def _tiny_config() -> dict[str, Any]:
    from athena.checkpoints import olmoe_config

    return olmoe_config("tiny")


# -- mlx-converted folders -------------------------------------------------------------------


@pytest.mark.mlx
def test_mlx_quantized_folder_counts_unpacked_parameters(
    tiny_olmoe: Path, mlx_installed: None, tmp_path: Path
) -> None:
    import contextlib
    import io

    from mlx_lm import convert

    out = tmp_path / "tiny-q4"
    with contextlib.redirect_stdout(io.StringIO()):
        convert(str(tiny_olmoe), str(out), quantize=True, q_bits=4, q_group_size=64)
    info = preflight.inspect_model(str(out))
    assert info.ok, info.problems
    assert info.quantization is not None and info.quantization["bits"] == 4
    assert info.parameters == count_parameters("tiny")
    assert "uint32" in info.stored_dtypes
    estimate = preflight.estimate_peak(info, backend="mlx")
    assert estimate.model == info.weight_bytes and estimate.quantize_bits == 4
    with pytest.raises(LoadError) as raised:
        preflight.check_load(str(out), backend="transformers", budget=LINUX_24)
    assert "only the mlx backend loads" in str(raised.value)


def test_a_cached_hub_id_is_checked_offline_and_online(
    tiny_olmoe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial snapshot (no tokenizer yet) is refused offline; online the hub id is located
    (fetched into the cache; here the hub is a closed local port, so the cache is what there is)
    and checked all the same: the preflight never steps aside."""
    import shutil

    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc"
    shutil.copytree(tiny_olmoe, snapshot)
    (snapshot / "tokenizer.json").unlink()
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match=r"has no tokenizer"):
        preflight.check_load("org/tiny", backend="mlx", budget=LINUX_24)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    from athena import source

    with pytest.raises(LoadError, match=r"has no tokenizer"):
        preflight.check_load(source.locate("org/tiny"), backend="mlx", budget=LINUX_24)
