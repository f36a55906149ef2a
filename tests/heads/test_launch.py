"""`athena train-head --ranks N`'s bookkeeping without processes: the status lines the ranks
write, the sentence the command ends with, and the settings each rank gets. The real runs
(a rank killed mid-run, a reward that raises) are in test_distributed.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from athena import cli
from athena.commands.train_head import settings_of
from athena.heads import launch
from athena.heads.grpo import GRPOConfig, TrainError
from athena.heads.train import TrainSettings


def _ends(*lines: str, ranks: int = 2) -> list[launch.RankEnd]:
    ends = {rank: launch.RankEnd(rank) for rank in range(ranks)}
    for line in lines:
        launch._read_line(line, ends)
    return list(ends.values())


def _status(rank: int, code: int, error: str | None = None, kind: str = "") -> str:
    body = {"rank": rank, "code": code, "error": error, "kind": kind}
    return launch.STATUS_PREFIX + json.dumps(body) + "\n"


def test_every_rank_reporting_zero_is_success_and_status_lines_are_not_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ends = _ends("some output\n", _status(0, 0), _status(1, 0))
    assert launch.summarize(ends, 2) is None
    assert capsys.readouterr().err == "some output\n"


def test_a_killed_rank_is_named_and_the_one_that_lost_it_is_not_blamed() -> None:
    ends = _ends(
        "\x1b[33m[WARN] Node with rank 1 exited with code -9 \x1b[0m\n",
        _status(0, 1, "rank 0 of 2: averaging failed: another rank is gone", "lost"),
        "\x1b[33m[WARN] Node with rank 0 exited with code -15 \x1b[0m\n",
    )
    sentence = launch.summarize(ends, 2)
    assert sentence is not None
    assert sentence.startswith("rank 1 of 2 failed: killed by SIGKILL before it could say why; ")
    assert "rank 0 stopped when it lost the connection to the others (exit code -15)" in sentence


def test_a_rank_that_never_reported_is_a_failure_even_if_mlx_launch_said_nothing() -> None:
    joining = launch.STATUS_PREFIX + json.dumps({"rank": 1, "code": None, "kind": "joining"})
    sentence = launch.summarize(_ends(joining + "\n", _status(0, 0)), 2)
    assert sentence is not None
    assert sentence.startswith("rank 1 of 2 failed: ended without reporting")
    assert "rank 0 finished" in sentence


def test_the_same_error_on_every_rank_is_said_once() -> None:
    error = "--data states.jsonl not found; pass a JSONL file"
    sentence = launch.summarize(_ends(_status(0, 1, error), _status(1, 1, error)), 2)
    assert sentence == (
        f"rank 0 of 2 failed: {error} (rank 1 too). Fix that and run again, or continue from "
        "the last checkpoint with --resume"
    )


def test_a_status_line_glued_to_another_ranks_partial_line_is_still_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ends = _ends("step 10/80: rew" + _status(1, 0), _status(0, 0))
    assert launch.summarize(ends, 2) is None
    assert capsys.readouterr().err == "step 10/80: rew\n"


def test_rank_status_reports_only_under_the_launcher(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TrainError), launch.rank_status():
        raise TrainError("no states")
    assert capfd.readouterr().err == ""
    monkeypatch.setenv(launch.STATUS_ENV, "1")
    monkeypatch.setenv("MLX_RANK", "1")
    with pytest.raises(KeyError), launch.rank_status():
        raise KeyError("x")
    line = capfd.readouterr().err
    assert line.startswith(launch.STATUS_PREFIX)
    status = json.loads(line[len(launch.STATUS_PREFIX) :])
    assert status == {"rank": 1, "code": 1, "error": "KeyError: 'x'", "kind": "error"}


def test_each_rank_gets_the_command_lines_settings() -> None:
    parser = cli.build_parser()
    argv = ["train-head", "--model", "m", "--data", "d.jsonl", "--reward", "a.b:c"]
    argv += ["--steps", "5", "--out", "o", "--backend", "mlx", "-v", "--resume"]
    argv += ["--learning-rate", "1e-08", "--group-size", "3", "--ranks", "2"]
    settings = settings_of(parser.parse_args(argv))
    assert TrainSettings.from_json(settings.to_json()) == settings
    assert settings.config == GRPOConfig(learning_rate=1e-8, num_generations=3)
    assert (settings.resume, settings.verbose, settings.model["backend"]) == (True, True, "mlx")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ranks", "0"], "--ranks 0 is not allowed; use an integer >= 1"),
        (["--ranks", "2", "--framework", "torch"], "--ranks trains on MLX; drop --framework torch"),
    ],
)
def test_bad_ranks_get_one_sentence(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-head", "--model", "m", "--data", "d", "--reward", "a:b", "--steps", "1"]
    assert cli.main([*argv, "--out", "o", *extra]) == 1
    assert capsys.readouterr().err == f"athena train-head: {message}\n"


def test_a_hostfile_starts_one_rank_per_host_and_a_bad_one_gets_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = [{"ssh": "mac-a.local", "ips": ["10.0.0.1"]}, {"ssh": "mac-b.local", "ips": []}]
    (tmp_path / "hosts.json").write_text(json.dumps({"backend": "ring", "hosts": hosts}))
    (tmp_path / "list.json").write_text(json.dumps(hosts * 2))
    (tmp_path / "junk.json").write_text("{")
    assert launch.hostfile_ranks(tmp_path / "hosts.json") == 2
    assert launch.hostfile_ranks(tmp_path / "list.json") == 4
    command = launch.launch_command(2, ["-m", "x"], port=None, hostfile="hosts.json")
    assert command[1:5] == ["--hostfile", "hosts.json", "--backend", "ring"]
    assert "-n" not in command and "--starting-port" not in command
    argv = ["train-head", "--model", "m", "--data", "d", "--reward", "a:b", "--steps", "1"]
    argv += ["--out", "o", "--hostfile"]
    assert cli.main([*argv, str(tmp_path / "junk.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"athena train-head: --hostfile {tmp_path / 'junk.json'} is not an ")
    (tmp_path / "huge.json").write_text(json.dumps(hosts * 20000))  # over 1 MiB: not read whole
    with pytest.raises(TrainError, match=r"huge.json is not an mlx.launch hostfile .it is larger"):
        launch.hostfile_ranks(tmp_path / "huge.json")
    assert cli.main([*argv, str(tmp_path / "hosts.json"), "--ranks", "3"]) == 1
    assert "--ranks 3 but --hostfile" in capsys.readouterr().err


def test_of_two_failing_ranks_the_one_that_failed_first_is_named() -> None:
    ends = _ends(_status(1, 1, "the reward raised"), _status(0, 1, "out of memory"))
    sentence = launch.summarize(ends, 2)
    assert sentence is not None
    assert sentence.startswith("rank 1 of 2 failed: the reward raised; rank 0 failed: out of")


def test_ranks_check_the_inputs_once_before_starting_any_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    argv = ["train-head", "--model", "m", "--data", str(missing), "--reward", "a:b"]
    assert cli.main([*argv, "--steps", "1", "--out", str(tmp_path / "o"), "--ranks", "2"]) == 1
    err = capsys.readouterr().err
    expected = f"athena train-head: --data {missing} not found; pass a JSONL file"
    assert err.startswith(expected) and len(err.splitlines()) == 1, err


def test_a_malformed_status_line_is_its_ranks_failure_not_a_crash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = launch.STATUS_PREFIX
    ends = _ends(
        prefix + '{"rank": 1, "code": "0", "error": null}\n',  # a code that is not an integer
        prefix + '{"rank": 0, "code": 0, "error": "\x1b[2J}\n',  # not JSON
        prefix + '{"rank": "one", "code": 0}\n',  # no rank to blame: only output
        _status(0, 0),
        _status(1, 0),
    )
    sentence = launch.summarize(ends, 2)
    assert sentence is not None
    assert sentence.startswith("rank 1 of 2 failed: it wrote a malformed status line: ")
    assert "rank 0 failed: it wrote a malformed status line: " in sentence
    assert "\x1b" not in sentence and "\\x1b[2J" in sentence  # shown escaped
    assert capsys.readouterr().err == prefix + '{"rank": "one", "code": 0}\n'


def test_a_ranks_error_is_shown_bounded_and_escaped() -> None:
    sentence = launch.summarize(_ends(_status(1, 1, "bad\x1b[2J" + "x" * 5000), _status(0, 0)), 2)
    assert sentence is not None and sentence.startswith("rank 1 of 2 failed: 'bad\\x1b[2Jxxx")
    assert "\x1b" not in sentence and len(sentence) < 700
