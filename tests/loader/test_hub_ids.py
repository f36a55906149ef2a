"""A path is never a hub lookup; a hub id that cannot be had is one sentence, tried once.

Offline (HF_HUB_OFFLINE=1, as in CI) and unreachable (a closed local port as the hub, never
the network): load() is False, the CLI exits 1 without a traceback, and a download failure is
not retried on the other backend, which would ask the same hub.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from athena.cli import main
from athena.models.olmoe import OLMoEConfig, OLMoEModel


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("allenai/OLMoE-1B-7B-0924", "hub"),
        ("org/name.v2", "hub"),
        ("olmoe", "folder"),  # no owner: a folder, never a hub lookup
        ("./org/name", "folder"),
        ("../name", "folder"),
        ("~/models/olmoe", "folder"),
        ("/models/olmoe", "folder"),
        ("a/b/c", "folder"),
        ("org/config.json", "folder"),
        ("org/", "folder"),
        ("models/typo", "folder"),  # `models` is a local folder in this test
    ],
)
def test_a_path_is_told_from_a_hub_id(
    name: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from athena.source import resolve_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert resolve_source(name).kind == kind


def test_missing_folder_under_a_local_folder_is_not_a_hub_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # online: still no hub lookup
    model = OLMoEModel(OLMoEConfig(model_name="models/olmoe-typo"))
    assert model.load() is False
    assert model.load_error == (
        "model folder not found: models/olmoe-typo (check the path; athena does not look up "
        "a path on the Hugging Face hub)"
    )


def test_hub_id_offline_and_not_cached_is_one_sentence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loader_log: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = OLMoEModel(OLMoEConfig())  # allenai/OLMoE-1B-7B-0924
    assert model.load() is False
    sentence = (
        "'allenai/OLMoE-1B-7B-0924' is not a local folder and HF_HUB_OFFLINE=1 forbids "
        "downloading it from the Hugging Face hub (it is not in the cache at "
        f"{tmp_path / 'empty-cache'}); pass a local model folder, or download it once with "
        "network access"
    )
    assert model.load_error == sentence
    assert [
        r.getMessage()
        for r in loader_log.records
        if r.levelno >= logging.ERROR and r.name.startswith("athena")
    ] == [sentence]
    assert main(["generate", "--model", "allenai/OLMoE-1B-7B-0924", "hi"]) == 1
    assert capsys.readouterr().err == f"athena generate: {sentence}\n"


@pytest.mark.mlx
@pytest.mark.slow
def test_unreachable_hub_is_one_sentence_and_no_second_attempt(
    tmp_path: Path, mlx_installed: None
) -> None:
    """mlx-lm's download fails; transformers would ask the same hub again (another ~50 s of
    retries), so load() stops there. The hub is a closed local port, never the network."""
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_CACHE": str(tmp_path / "empty-cache"),
    }
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "athena.cli",
            "generate",
            "--model",
            "allenai/OLMoE-1B-7B-0924",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "athena generate: could not get 'allenai/OLMoE-1B-7B-0924' from the Hugging Face hub "
        "(LocalEntryNotFoundError: "
    ), last
    assert "Connection refused" in last  # errno differs: 111 on Linux, 61 on macOS
    assert last.endswith("); check the network and the id, or pass a local model folder")
    assert "falling back" not in result.stderr
    assert "Traceback" not in result.stderr
