"""`athena train-head`: a run's files, resuming, and one sentence (exit 1) for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from athena import cli
from athena.heads import toy
from athena.models.head import load_head

REWARDS = """
def raises(text, action):
    raise RuntimeError("scorer offline")

def text_reward(text, action):
    return "high"

def nan_reward(text, action):
    return float("nan")
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with toy states, held-out states and a rewards module; the current folder."""
    (tmp_path / "states.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in toy.states(64, seed=1))
    )
    (tmp_path / "held.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in toy.states(40, seed=2))
    )
    (tmp_path / "myrewards.py").write_text(REWARDS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "myrewards", raising=False)
    return tmp_path


def _train(tiny_olmoe: Path, *extra: str, steps: int = 12, out: str = "out") -> list[str]:
    return [
        "train-head",
        "--model",
        str(tiny_olmoe),
        "--data",
        "states.jsonl",
        "--reward",
        "athena.heads.toy:reward",
        "--steps",
        str(steps),
        "--out",
        out,
        *extra,
    ]


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()  # what earlier runs printed
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("athena train-head: ")
    return err


def test_a_run_writes_checkpoint_log_head_and_plot(
    tiny_olmoe: Path, workdir: Path, framework: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _train(tiny_olmoe, "--framework", framework, "--group-size", "4", "--save-every", "5")
    argv += ["--eval-data", "held.jsonl", "--steps-per-eval", "4", "--batch-size", "8"]
    assert cli.main(argv) == 0
    out = workdir / "out"
    stdout = capsys.readouterr().out
    assert f"trained 12 steps on {framework}" in stdout and "held-out greedy reward" in stdout
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-0000005",
        "checkpoint-0000010",
        "checkpoint-0000012",
    ]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(13))  # step 0: the untrained head's eval
    assert [r["step"] for r in rows if "eval_reward" in r] == [0, 4, 8, 12]
    assert all({"reward", "loss", "kl", "clip_ratio"} <= r.keys() for r in rows[1:])
    state = json.loads((out / "checkpoint-0000012" / "trainer_state.json").read_text())
    assert state["config"]["num_generations"] == 4 and state["framework"] == framework
    assert load_head(out / "head.safetensors", framework=framework).num_actions == 4
    assert (out / "train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_to_the_same_head_as_one_run(
    tiny_olmoe: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from athena.models.head import load_weights

    small = ("--batch-size", "8", "--save-every", "4")
    assert cli.main(_train(tiny_olmoe, *small, steps=8, out="straight")) == 0
    assert cli.main(_train(tiny_olmoe, *small, steps=4, out="split")) == 0
    err = _fails(_train(tiny_olmoe, *small, steps=8, out="split"), capsys)
    assert "already has checkpoint-0000004; pass --resume" in err
    assert cli.main(_train(tiny_olmoe, *small, "--resume", steps=8, out="split")) == 0
    straight = load_weights(workdir / "straight" / "head.safetensors")
    split = load_weights(workdir / "split" / "head.safetensors")
    for name, value in straight.items():
        assert abs(value - split[name]).max() < 1e-6
    rows = [json.loads(line) for line in (workdir / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))


def test_cached_features_are_read_without_loading_the_model_until_the_load_changes(
    tiny_olmoe: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """features.safetensors and eval-features.safetensors are keyed by the texts and the model
    arguments: a resumed run reads them and loads no model (what `--ranks N` relies on); another
    --dtype, or a damaged file, loads the model again."""
    from athena.commands import train_head

    held = ("--eval-data", "held.jsonl", "--batch-size", "8", "--save-every", "4")
    assert cli.main(_train(tiny_olmoe, *held, steps=4)) == 0
    assert (workdir / "out" / "eval-features.safetensors").is_file()
    loads: list[str] = []
    real_load = train_head.load_model

    def counted(args: Any) -> Any:
        loads.append(args.dtype or "the model's")
        return real_load(args)

    monkeypatch.setattr(train_head, "load_model", counted)
    assert cli.main(_train(tiny_olmoe, *held, "--resume", steps=6)) == 0
    assert loads == []
    assert cli.main(_train(tiny_olmoe, *held, "--dtype", "float32", steps=2, out="other")) == 0
    assert loads == ["float32"]
    (workdir / "out" / "features.safetensors").write_bytes(b"not a safetensors file")
    assert cli.main(_train(tiny_olmoe, *held, "--resume", steps=8)) == 0
    assert loads == ["float32", "the model's"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"--data": "missing.jsonl"}, "--data missing.jsonl not found"),
        ({"--data": "bad.jsonl"}, "bad.jsonl line 2 is not valid JSON"),
        ({"--data": "notext.jsonl"}, 'notext.jsonl line 1 has no "text" string'),
        ({"--data": "empty.jsonl"}, "empty.jsonl has no states"),
        ({"--data": "long.jsonl"}, "long.jsonl line 2 is longer than 1 MiB"),
        ({"--data": "digits.jsonl"}, "digits.jsonl line 1 holds an integer too long to read"),
        ({"--reward": "nosuchmodule:score"}, "reward module 'nosuchmodule' not found"),
        ({"--reward": "myrewards:absent"}, "reward module 'myrewards' has no function 'absent'"),
        ({"--reward": "myrewards"}, "is neither module:function"),
        ({"--reward": "myrewards:raises"}, "raised RuntimeError: scorer offline"),
        ({"--reward": "myrewards:text_reward"}, "returned 'high' (str)"),
        ({"--reward": "myrewards:nan_reward"}, "must return a finite number"),
        ({"--group-size": "1"}, "num_generations=1 is not allowed"),
        ({"--init": "nohead.safetensors"}, "head file nohead.safetensors not found"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_1(
    tiny_olmoe: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    expected: str,
) -> None:
    (workdir / "bad.jsonl").write_text('{"text": "save"}\n{"text": oops}\n')
    (workdir / "notext.jsonl").write_text('{"prompt": "save"}\n')
    (workdir / "empty.jsonl").write_text("\n")
    (workdir / "long.jsonl").write_text('{"text": "save"}\n{"text": "' + "x" * 2**20 + '"}\n')
    (workdir / "digits.jsonl").write_text('{"text": "save", "n": ' + "9" * 5000 + "}\n")
    argv = _train(tiny_olmoe, steps=2)
    for flag, value in change.items():
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert expected in _fails(argv, capsys)
    assert not list((workdir / "out").glob("checkpoint-*")) if (workdir / "out").exists() else True


def test_a_rewards_jsonl_works_and_a_state_missing_from_it_is_one_sentence(
    tiny_olmoe: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = toy.states(64, seed=1)
    table = [{"text": t, "rewards": [float(a == toy.label(t)) for a in range(4)]} for t in texts]
    (workdir / "rewards.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table))
    argv = _train(tiny_olmoe, steps=3)
    argv[argv.index("--reward") + 1] = "rewards.jsonl"
    assert cli.main(argv) == 0
    (workdir / "rewards.jsonl").write_text(json.dumps(table[0]) + "\n")
    err = _fails([*argv[:-1], "out2"], capsys)
    assert "raised KeyError" in err and "no line for this state in rewards.jsonl" in err
    (workdir / "rewards.jsonl").write_text(json.dumps({"text": "x", "rewards": [1]}) + "\n")
    err = _fails([*argv[:-1], "out3"], capsys)
    assert 'needs "rewards": a list of 4 numbers' in err


def test_the_progress_bar_shows_reward_and_loss_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from athena.heads.train import _Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    metrics = {"step": 1.0, "reward": 0.5, "loss": 0.25}
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = _Progress(True, total=3, initial=0)
    bar.update(metrics)
    bar.close()
    shown = terminal.getvalue()
    assert "train-head" in shown and "reward=0.500" in shown and "loss=0.2500" in shown
    pipe = io.StringIO()  # not a terminal: no bar, a line every 10 steps and at the end
    monkeypatch.setattr(sys, "stderr", pipe)
    bar = _Progress(True, total=3, initial=0)
    assert bar.bar is None
    bar.update(metrics)
    bar.update({**metrics, "step": 3.0})
    assert pipe.getvalue() == "step 3/3: reward 0.500, loss 0.2500\n"


def test_a_framework_that_is_not_installed_is_one_sentence_simulated_missing_torch(
    tiny_olmoe: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Simulated: find_spec says torch is missing (both are installed in the test env)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    err = _fails(_train(tiny_olmoe, "--framework", "torch", steps=2), capsys)
    assert "--framework torch needs torch, which is not installed here" in err


@pytest.fixture(scope="module")
def installed_command_run(
    tiny_olmoe: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One run of the installed `athena` command (whose sys.path does not start with the
    current folder) for the two tests below, in a folder holding a colorsys.py and a json.py,
    with a reward file given by path that imports colorsys (not imported before it) and json,
    and where `import matplotlib` fails (PYTHONPATH: a dev dependency only). One child, not
    two: each trains on the tiny model, which is most of a test's time."""
    workdir = tmp_path_factory.mktemp("installed")
    (workdir / "states.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in toy.states(64, seed=1))
    )
    blocker = workdir / "blocker"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('no matplotlib here')\n")
    shadow = "open('shadow-imported', 'w').write(__name__)\n"
    (workdir / "colorsys.py").write_text(shadow)
    (workdir / "json.py").write_text(shadow)
    (workdir / "scored.py").write_text(
        "import colorsys, json\n\n"
        "def score(text, action):\n"
        "    assert colorsys.rgb_to_hsv(1, 0, 0) == (0.0, 1.0, 1.0) and json.loads('1') == 1\n"
        "    return float(action == 0)\n"
    )
    argv = _train(tiny_olmoe, "--batch-size", "8", steps=1)
    argv[argv.index("--reward") + 1] = "scored.py:score"
    athena = Path(sys.executable).with_name("athena")
    proc = subprocess.run(
        [str(athena), *argv],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"},
        cwd=workdir,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc, workdir


def test_no_matplotlib_is_one_line_and_no_plot(
    installed_command_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, workdir = installed_command_run
    assert "no plot: matplotlib is not installed" in proc.stderr
    assert not (workdir / "out" / "train.png").exists()
    assert (workdir / "out" / "head.safetensors").is_file()


def test_a_reward_file_is_loaded_by_path_and_the_current_folder_shadows_no_module(
    installed_command_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Both colorsys and json the reward file imports must be the standard library's."""
    proc, workdir = installed_command_run
    assert not (workdir / "shadow-imported").exists()
    assert "trained 1 steps" in proc.stdout
