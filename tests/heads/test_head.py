"""The MemoryActionHead on MLX and torch: one architecture, one weights file, equal logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from athena.models import head as head_api
from athena.models.head import HeadError, HeadShape, load_head, new_head, save_head
from athena.models.olmoe import OLMoEModel

SHAPE = {"num_actions": 4, "hidden_dim": 32}


def test_both_heads_have_the_same_parameter_names_and_shapes(
    mlx_installed: None, torch_installed: None
) -> None:
    from mlx.utils import tree_flatten

    from athena.models.olmoe import MemoryActionHead as TorchHead

    mlx_head = head_api.head_class("mlx")(16, **SHAPE)
    torch_head = TorchHead(16, **SHAPE)
    mlx_names = {k: tuple(v.shape) for k, v in tree_flatten(mlx_head.parameters())}
    torch_names = {k: tuple(v.shape) for k, v in torch_head.state_dict().items()}
    assert mlx_names == torch_names == HeadShape(16, 4, 32).parameter_shapes()
    assert tuple(mlx_names) == head_api.PARAMETER_NAMES


@pytest.mark.parametrize(("writer", "reader"), [("mlx", "torch"), ("torch", "mlx")])
def test_a_head_saved_by_one_framework_loads_in_the_other_with_equal_logits(
    writer: str,
    reader: str,
    mlx_installed: None,
    torch_installed: None,
    tmp_path: Path,
    random_features: np.ndarray,
) -> None:
    # Not the seeded init: the writer's own default init, then training-like noise.
    head = head_api.head_class(writer)(16, **SHAPE)
    weights = {k: v + 0.1 for k, v in head_api.head_weights(head).items()}
    head_api.set_head_weights(head, weights)
    path = save_head(head, tmp_path / "head.safetensors")
    other = load_head(path, framework=reader)
    assert head_api.framework_of(other) == reader
    for name, value in head_api.head_weights(other).items():
        np.testing.assert_array_equal(value, weights[name])
    a = head_api.head_logits(head, random_features * 3)
    b = head_api.head_logits(other, random_features * 3)
    assert a.shape == (12, 4)
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_gelu_is_the_exact_erf_one_on_both(mlx_installed: None, torch_installed: None) -> None:
    """mlx.nn.GELU's "precise" is the tanh approximation; the head must use the exact one,
    like torch's nn.GELU(): the two differ by ~1e-4 at x = 2, more than the 1e-5 asked."""
    import mlx.core as mx
    import torch

    mlx_head = head_api.head_class("mlx")(4)
    x = np.linspace(-4, 4, 81, dtype=np.float32)
    mlx_gelu = np.array(mlx_head.net[2](mx.array(x)))
    torch_gelu = torch.nn.GELU()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mlx_gelu, torch_gelu, atol=1e-6)


def test_new_head_is_the_same_on_both_frameworks_and_seeded(
    mlx_installed: None, torch_installed: None, random_features: np.ndarray
) -> None:
    a = new_head(16, seed=3, framework="mlx", **SHAPE)
    b = new_head(16, seed=3, framework="torch", **SHAPE)
    c = new_head(16, seed=4, framework="mlx", **SHAPE)
    np.testing.assert_allclose(
        head_api.head_logits(a, random_features),
        head_api.head_logits(b, random_features),
        atol=1e-5,
    )
    assert not np.allclose(
        head_api.head_weights(a)["net.1.weight"], head_api.head_weights(c)["net.1.weight"]
    )


def test_head_file_records_its_shape(tmp_path: Path, framework: str) -> None:
    from safetensors import safe_open

    path = save_head(new_head(16, framework=framework, **SHAPE), tmp_path / "h.safetensors")
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    assert metadata["format"] == head_api.HEAD_FORMAT
    assert json.loads(metadata["shape"]) == {"hidden_size": 16, "num_actions": 4, "hidden_dim": 32}
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_bad_head_files_get_one_sentence(tmp_path: Path, framework: str) -> None:
    from safetensors.numpy import save_file

    with pytest.raises(HeadError, match="not found"):
        load_head(tmp_path / "missing.safetensors", framework=framework)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(HeadError, match="not a readable safetensors"):
        load_head(tmp_path / "junk.safetensors", framework=framework)
    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(HeadError, match=r"not a MemoryActionHead: it has no net\.0\.weight"):
        load_head(tmp_path / "other.safetensors", framework=framework)
    weights = head_api.initial_weights(HeadShape(16, 4, 32))
    weights["net.3.bias"] = np.zeros(5, np.float32)
    save_file(weights, str(tmp_path / "bent.safetensors"))
    with pytest.raises(HeadError, match=r"net.3.bias has shape \(5,\), expected \(4,\)"):
        load_head(tmp_path / "bent.safetensors", framework=framework)
    with pytest.raises(HeadError, match="framework 'jax' is not known"):
        load_head(tmp_path / "bent.safetensors", framework="jax")


def test_a_full_disk_while_saving_a_head_is_one_sentence_and_keeps_the_old_file(
    tmp_path: Path,
) -> None:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) fails the write as a full disk would:
    safetensors' own error becomes one OSError sentence, and the old head is as it was."""
    weights = {
        name: np.ones(shape, np.float32)
        for name, shape in HeadShape(8, 4, 4).parameter_shapes().items()
    }
    old = tmp_path / "head.safetensors"
    head_api.save_weights(weights, old)
    before = old.read_bytes()
    script = (
        "import resource, signal, sys\n"
        "import numpy as np\n"
        "from athena.models import head\n"
        "shapes = head.HeadShape(512, 4, 512).parameter_shapes()\n"
        "weights = {n: np.zeros(s, np.float32) for n, s in shapes.items()}\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))\n"
        "try:\n"
        f"    head.save_weights(weights, {str(old)!r})\n"
        "except OSError as error:\n"
        "    sys.exit(str(error))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 1
    assert child.stderr.startswith(f"could not write {old} (Error while serializing")
    assert child.stderr.rstrip().endswith("; it is as it was")
    assert len(child.stderr.splitlines()) == 1
    assert old.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["head.safetensors"]


def test_encode_vectors_are_the_heads_input_and_mlx_load_keeps_action_head_none(
    encoder: OLMoEModel, framework: str
) -> None:
    """TASK-074: the mlx-path model has no head; the head is made explicitly from encode()."""
    if encoder.backend == "mlx":
        assert encoder.action_head is None
    vectors = encoder.encode(["save note keep", "drop erase clear"])
    head = new_head(vectors.shape[1], framework=framework)
    logits = head_api.head_logits(head, vectors)
    assert logits.shape == (2, 4) and np.isfinite(logits).all()


def test_the_torch_head_from_olmoe_loads_into_mlx(
    tiny_olmoe: Path, mlx_installed: None, torch_installed: None, tmp_path: Path
) -> None:
    """The transformers path's model.action_head is a MemoryActionHead save_head accepts."""
    from athena.models.olmoe import OLMoEConfig

    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load(), model.load_error
    vectors = model.encode(["save note keep", "find get"])
    path = save_head(model.action_head, tmp_path / "head.safetensors")
    mlx_logits = head_api.head_logits(load_head(path, framework="mlx"), vectors)
    assert model.last_action_logits is not None
    np.testing.assert_allclose(mlx_logits, model.last_action_logits, atol=1e-5)


def test_olmoe_attaches_new_head_of_its_seed_the_weights_an_mlx_head_of_that_seed_has(
    tiny_olmoe: Path, mlx_installed: None, torch_installed: None, random_features: np.ndarray
) -> None:
    """The transformers path's head is head_api.new_head(config.seed), not torch's RNG: so both
    frameworks start from the same weights."""
    import torch

    from athena.models.head_torch import MemoryActionHead as TorchHead
    from athena.models.olmoe import OLMoEConfig

    config = OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False, seed=5)
    model = OLMoEModel(config)
    torch.manual_seed(123)  # torch's RNG state must not matter
    assert model.load(), model.load_error
    assert isinstance(model.action_head, TorchHead) and not model.action_head.training
    hidden = model.action_head.hidden_size
    shape = {"num_actions": config.num_memory_actions, "hidden_dim": config.action_head_hidden}
    attached = head_api.head_weights(model.action_head)
    for name, value in head_api.head_weights(
        new_head(hidden, seed=5, framework="torch", **shape)
    ).items():
        np.testing.assert_array_equal(attached[name], value)
    mlx_head = new_head(hidden, seed=5, framework="mlx", **shape)
    for name, value in head_api.head_weights(mlx_head).items():
        np.testing.assert_allclose(attached[name], value, atol=1e-6, rtol=0)
    features = np.random.default_rng(3).standard_normal((12, hidden)).astype(np.float32)
    np.testing.assert_allclose(
        head_api.head_logits(model.action_head, features),
        head_api.head_logits(mlx_head, features),
        atol=1e-6,
        rtol=0,
    )
    other = new_head(hidden, seed=6, framework="torch", **shape)
    assert not np.allclose(head_api.head_weights(other)["net.1.weight"], attached["net.1.weight"])


def test_a_head_assigned_in_place_of_the_seeded_one_is_the_one_encode_feeds(
    tiny_olmoe: Path, torch_installed: None
) -> None:
    """The seeded head stays the same object; a head assigned instead is what encode() feeds;
    unload drops it."""
    from athena.models.olmoe import OLMoEConfig

    config = OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False)
    model = OLMoEModel(config)
    assert model.load(), model.load_error
    seeded = model.action_head
    assert seeded is not None and model.action_head is seeded
    shape = {"num_actions": config.num_memory_actions, "hidden_dim": config.action_head_hidden}
    model.action_head = new_head(seeded.hidden_size, seed=9, framework="torch", **shape)
    vector = model.encode("save note keep", show_progress=False)
    expected = head_api.head_logits(model.action_head, vector[None])[0]
    np.testing.assert_allclose(model.last_action_logits, expected, atol=1e-6, rtol=0)
    assert not np.allclose(head_api.head_logits(seeded, vector[None])[0], expected)
    model.unload()
    assert model.action_head is None


def test_the_networks_live_on_the_model_floor_only(
    mlx_installed: None, torch_installed: None
) -> None:
    import athena.heads
    import athena.models.olmoe
    from athena.models.head_mlx import MemoryActionHead as MLXHead
    from athena.models.head_torch import MemoryActionHead as TorchHead

    assert head_api.head_class("mlx") is MLXHead
    assert head_api.head_class("torch") is TorchHead is athena.models.olmoe.MemoryActionHead
    assert TorchHead.__module__ == "athena.models.head_torch"
    assert not hasattr(athena.heads, "new_head")  # one way to import the head


def test_importing_athena_heads_imports_no_framework() -> None:
    code = (
        "import sys, athena.heads, athena.heads.grpo, athena.heads.toy, athena.cli; "
        "print(sorted(m for m in ('numpy', 'mlx', 'torch', 'safetensors') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_each_frameworks_own_safetensors_writer_and_reader_work_too(
    mlx_installed: None, torch_installed: None, tmp_path: Path, random_features: np.ndarray
) -> None:
    """mx.save_safetensors / torch's state_dict files load with load_head, and
    mlx's Module.load_weights and torch's load_state_dict read save_head's file."""
    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten
    from safetensors.torch import load_file, save_file

    mlx_head = new_head(16, seed=1, framework="mlx", **SHAPE)
    mx.save_safetensors(
        str(tmp_path / "mlx.safetensors"), dict(tree_flatten(mlx_head.parameters()))
    )
    torch_head = new_head(16, seed=2, framework="torch", **SHAPE)
    save_file(torch_head.state_dict(), str(tmp_path / "torch.safetensors"))
    for path, source in (("mlx.safetensors", mlx_head), ("torch.safetensors", torch_head)):
        for framework in ("mlx", "torch"):
            loaded = load_head(tmp_path / path, framework=framework)
            np.testing.assert_allclose(
                head_api.head_logits(loaded, random_features),
                head_api.head_logits(source, random_features),
                atol=1e-5,
            )
    ours = save_head(mlx_head, tmp_path / "ours.safetensors")
    native_mlx = head_api.head_class("mlx")(16, **SHAPE)
    native_mlx.load_weights(str(ours))  # strict: every parameter, by name
    native_torch = head_api.head_class("torch")(16, **SHAPE)
    native_torch.load_state_dict(load_file(str(ours)))
    expected = head_api.head_logits(mlx_head, random_features)
    np.testing.assert_allclose(
        head_api.head_logits(native_mlx, random_features), expected, atol=1e-5
    )
    with torch.no_grad():
        got = native_torch(torch.from_numpy(random_features)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


# -- issue #29 item 5: a head saved by `athena train-head`, attached through action_head_path ---

TEXTS = ["save note keep", "drop erase clear", "find get"]


@pytest.fixture(scope="module")
def trained_head(tiny_olmoe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head trained for two steps by the real `athena train-head` on the tiny checkpoint."""
    from athena import cli
    from athena.heads import toy

    folder = tmp_path_factory.mktemp("trained")
    data = folder / "states.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in toy.states(16, seed=1)))
    argv = ["train-head", "--model", str(tiny_olmoe), "--data", str(data), "--steps", "2"]
    argv += ["--reward", "athena.heads.toy:reward", "--out", str(folder / "run")]
    argv += ["--group-size", "4", "--batch-size", "8", "--hidden-dim", "32"]
    assert cli.main(argv) == 0
    return folder / "run" / "head.safetensors"


@pytest.mark.parametrize("backend", ["transformers", "mlx"])
def test_a_trained_head_attaches_through_action_head_path_with_its_own_logits(
    backend: str, trained_head: Path, tiny_olmoe: Path, request: pytest.FixtureRequest
) -> None:
    import hashlib

    from athena.models.olmoe import OLMoEConfig

    framework = "torch" if backend == "transformers" else "mlx"
    request.getfixturevalue(f"{framework}_installed")
    config = OLMoEConfig(
        model_name=str(tiny_olmoe),
        use_mlx=backend == "mlx",
        allow_fallback=False,
        action_head_path=str(trained_head),
    )
    model = OLMoEModel(config)
    assert model.load(), model.load_error
    assert model.backend == backend and head_api.framework_of(model.action_head) == framework
    assert model.action_head_sha256 == hashlib.sha256(trained_head.read_bytes()).hexdigest()
    vectors = model.encode(TEXTS, batch_size=2)  # two batches through the head
    saved = load_head(trained_head, framework=framework)
    assert saved.hidden_dim == 32 and saved.hidden_size == vectors.shape[1]
    expected = head_api.head_logits(saved, vectors)
    np.testing.assert_allclose(model.last_action_logits, expected, atol=1e-6, rtol=0)
    fresh = new_head(vectors.shape[1], seed=config.seed, framework=framework, hidden_dim=32)
    assert not np.allclose(head_api.head_logits(fresh, vectors), expected)  # it is not a new head


def test_encode_action_head_prints_the_heads_logits(
    trained_head: Path, tiny_olmoe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from athena import cli
    from athena.models.olmoe import OLMoEConfig

    argv = ["encode", "--model", str(tiny_olmoe), "--action-head", str(trained_head), *TEXTS]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load(), model.load_error
    framework = "mlx" if model.backend == "mlx" else "torch"
    expected = head_api.head_logits(
        load_head(trained_head, framework=framework), model.encode(TEXTS)
    )
    np.testing.assert_allclose(np.array(rows), expected, atol=1e-5)


def test_a_head_that_does_not_fit_or_cannot_be_read_is_one_sentence(
    tiny_olmoe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from athena import cli
    from athena.models.olmoe import OLMoEConfig

    hidden = json.loads((tiny_olmoe / "config.json").read_text())["hidden_size"]
    narrow = save_head(new_head(hidden + 1, framework="torch"), tmp_path / "narrow.safetensors")
    six = save_head(
        new_head(hidden, num_actions=6, framework="torch"), tmp_path / "six.safetensors"
    )
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(six.read_bytes()[:300])
    cases = {
        narrow: f"the action head {narrow} takes a hidden size of {hidden + 1} and gives 4 "
        f"actions, but {tiny_olmoe} has a hidden size of {hidden} and num_memory_actions is 4; "
        "pass a head trained on this model (athena train-head --model ...) with that many "
        "actions",
        six: f"the action head {six} takes a hidden size of {hidden} and gives 6 actions, but "
        f"{tiny_olmoe} has a hidden size of {hidden} and num_memory_actions is 4; pass a head "
        "trained on this model (athena train-head --model ...) with that many actions",
        tmp_path / "missing.safetensors": f"head file {tmp_path / 'missing.safetensors'} not "
        "found; pass a .safetensors written by save_head",
        truncated: f"head file {truncated} is not a readable safetensors file (SafetensorError: "
        "Error while deserializing header: ",
    }
    for path, sentence in cases.items():
        model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), action_head_path=str(path)))
        assert model.load() is False
        assert model.load_error is not None and model.load_error.startswith(sentence)
        assert len(model.load_error.splitlines()) == 1 and model.action_head is None
        assert cli.main(["encode", "--model", str(tiny_olmoe), "--action-head", str(path), "x"])
        err = capsys.readouterr().err
        assert err.startswith(f"athena encode: {sentence}") and len(err.splitlines()) == 1
    config = OLMoEConfig(model_name=str(tiny_olmoe), num_memory_actions=6, action_head_path=six)
    model = OLMoEModel(config)
    assert model.load(), model.load_error  # fits once the model expects six actions
