"""`athena encode --input FILE|- --output vectors.npy` (issue 11, part 3): texts streamed from
.txt/.jsonl/stdin, vectors written atomically, one sentence (with the line number) for a bad
line, exit 1 without a traceback. On the tiny checkpoint, mostly on the transformers backend
(the batching itself is tested on both in test_encode_batch.py)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from athena import encode_io
from athena.cli import main
from athena.commands import model as model_commands
from athena.models.olmoe import OLMoEModel

TEXTS = ["hello", "memory of experts", '{"not": "json here"}', "caf\u00e9 \U0001f600", "  x  "]


@pytest.fixture
def run(
    tiny_olmoe: Path, torch_model: OLMoEModel, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`run(*argv)`: athena encode --model tiny --backend transformers *argv -> (code, out, err)."""

    def invoke(*argv: str, backend: str = "transformers") -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["encode", "--model", str(tiny_olmoe), "--backend", backend, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def _txt(tmp_path: Path, lines: list[str], name: str = "texts.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _left_over(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_txt_file_becomes_a_npy_of_the_vectors_in_line_order(
    run: Callable[..., tuple[int, str, str]], torch_model: OLMoEModel, tmp_path: Path
) -> None:
    source, out = _txt(tmp_path, TEXTS), tmp_path / "vectors.npy"
    assert run("--input", str(source), "--output", str(out), "--batch-size", "2") == (0, "", "")
    vectors = np.load(out)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(vectors, torch_model.encode(TEXTS), atol=1e-6)
    assert _left_over(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.mlx
def test_the_mlx_backend_writes_the_same_vectors(
    run: Callable[..., tuple[int, str, str]], mlx_model: OLMoEModel, tmp_path: Path
) -> None:
    source, out = _txt(tmp_path, TEXTS), tmp_path / "vectors.npy"
    assert run("--input", str(source), "--output", str(out), backend="mlx")[0] == 0
    np.testing.assert_allclose(np.load(out), mlx_model.encode(TEXTS), atol=1e-6)


def test_jsonl_lines_are_strings_or_objects_with_a_text_field(
    run: Callable[..., tuple[int, str, str]], torch_model: OLMoEModel, tmp_path: Path
) -> None:
    lines = [json.dumps(TEXTS[0]), json.dumps({"id": 7, "text": TEXTS[1]}), json.dumps(TEXTS[2])]
    source = _txt(tmp_path, lines, "texts.jsonl")
    out = tmp_path / "vectors.npy"
    assert run("--input", str(source), "--output", str(out))[0] == 0
    np.testing.assert_allclose(np.load(out), torch_model.encode(TEXTS[:3]), atol=1e-6)


def test_stdin_and_json_lines_on_stdout(
    run: Callable[..., tuple[int, str, str]],
    torch_model: OLMoEModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = "".join(f"{json.dumps({'text': t})}\r\n" for t in TEXTS[:2]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run("--input", "-", "--format", "jsonl")
    assert (code, err) == (0, "")
    vectors = np.array([json.loads(line) for line in out.splitlines()])
    np.testing.assert_allclose(vectors, torch_model.encode(TEXTS[:2]), atol=1e-5)


def test_many_chunks_give_one_array_with_the_right_row_count(
    run: Callable[..., tuple[int, str, str]],
    torch_model: OLMoEModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        model_commands, "ENCODE_CHUNK", 2
    )  # 5 texts: three encode() calls, three appends
    source, out = _txt(tmp_path, TEXTS), tmp_path / "vectors.npy"
    assert run("--input", str(source), "--output", str(out), "--batch-size", "1")[0] == 0
    np.testing.assert_allclose(np.load(out), torch_model.encode(TEXTS), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "content", "sentence"),
    [
        (
            "texts.txt",
            b"one\n\nthree\n",
            "line 2 of {path} is empty; remove it (each line is one text, and row i of the "
            "output is line i)",
        ),
        ("texts.txt", b"one\ntwo \xff\n", "line 2 of {path} is not UTF-8 (byte 5); save the"),
        (
            "texts.jsonl",
            b'"one"\n{"text": "two"}\n{"text": 3}\n',
            'line 3 of {path} is not a JSON string or an object with a "text" field; fix or',
        ),
        (
            "texts.jsonl",
            b'"one"\n{text: two}\n',
            "line 2 of {path} is not JSON (Expecting property name enclosed in double quotes "
            'at column 2); each line must be a JSON string or an object with a "text" field',
        ),
        ("texts.jsonl", b'"one"\n""\n', "line 2 of {path} is empty; remove it"),
        ("texts.txt", b"", "{path} has no texts; put one text per line"),
    ],
)
def test_a_bad_line_is_one_sentence_and_the_existing_output_is_untouched(
    run: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: bytes,
    sentence: str,
) -> None:
    monkeypatch.setattr(
        model_commands, "ENCODE_CHUNK", 1
    )  # chunks of --batch-size 1: the bad line comes
    # after the lines before it were encoded and written to the temporary file
    source, out = tmp_path / name, tmp_path / "vectors.npy"
    source.write_bytes(content)
    out.write_bytes(b"the user's earlier result")
    code, stdout, err = run("--input", str(source), "--output", str(out), "--batch-size", "1")
    assert (code, stdout) == (1, "")
    assert err.startswith("athena encode: " + sentence.format(path=source)), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out.read_bytes() == b"the user's earlier result"
    assert _left_over(tmp_path) == []


def test_a_text_longer_than_the_positions_names_its_line_and_truncate_encodes_it(
    tiny_olmoe: Path, torch_installed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads((tiny_olmoe / "config.json").read_text())
    assert config["max_position_embeddings"] == 4096
    source, out = _txt(tmp_path, ["fine", "x" * 5000, "also fine"]), tmp_path / "v.npy"
    argv = ["encode", "--model", str(tiny_olmoe), "--backend", "transformers"]
    argv += ["--input", str(source), "--output", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        f"athena encode: line 2 of {source} has 5,000 tokens, more than this model's 4,096 "
        "positions (max_position_embeddings); shorten or split it, or pass --truncate to keep "
        "its first 4,096 tokens\n"
    )
    assert not out.exists()
    assert main([*argv, "--truncate"]) == 0
    assert np.load(out).shape == (3, 64)


def test_ctrl_c_mid_run_leaves_no_output_and_no_temporary_file(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = OLMoEModel.encode
    calls: list[int] = []

    def interrupted_on_the_second_chunk(self: OLMoEModel, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(OLMoEModel, "encode", interrupted_on_the_second_chunk)
    lines = ["memory"] * (model_commands.ENCODE_CHUNK + 1)  # two chunks of --input
    source, out = _txt(tmp_path, lines), tmp_path / "vectors.npy"
    assert run("--input", str(source), "--output", str(out), "--batch-size", "64")[0] == 130
    assert len(calls) == 2
    assert not out.exists() and _left_over(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["hi", "--input", "{src}"], "give the texts either as TEXT arguments or with --input"),
        ([], "give the texts either as TEXT arguments or with --input"),
        (["--input", "{tmp}/missing.txt"], "--input file not found: {tmp}/missing.txt"),
        (
            ["--input", "{src}", "--output", "{tmp}/no/such/v.npy"],
            "the folder of --output does not exist: {tmp}/no/such",
        ),
        (["--input", "{src}", "--output", "{tmp}"], "--output {tmp} is a folder; name the"),
        (["--input", "{src}", "--output", "{src}"], "--output is the --input file; write the"),
        (["--input", "{src}", "--batch-size", "0"], "--batch-size=0 is not allowed; use an"),
        (["hi", "--format", "jsonl"], "--format describes --input; pass --input FILE too"),
        (["hi", ""], "TEXT 2 is empty; pass at least one character"),
    ],
)
def test_wrong_arguments_are_one_sentence(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path, argv: list[str], sentence: str
) -> None:
    source = _txt(tmp_path, ["one"])
    argv = [a.format(src=source, tmp=tmp_path) for a in argv]
    code, out, err = run(*argv)
    assert source.read_text() == "one\n"
    assert (code, out) == (1, "")
    assert err.startswith("athena encode: " + sentence.format(tmp=tmp_path)), err
    assert err.count("\n") == 1


def test_help_says_what_a_line_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert 'a JSON string or a JSON object with a string "text" field' in text
    assert "Empty lines are refused" in text
    for option in ("--input", "--output", "--batch-size", "--truncate", "--no-progress"):
        assert option in text


class LinesOnly(io.RawIOBase):
    """A binary stream that can be iterated line by line but refuses to be read whole."""

    def __init__(self, data: bytes) -> None:
        self.lines = data.splitlines(keepends=True)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.lines)

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the input was read whole")


def test_the_input_is_read_line_by_line() -> None:
    stream = LinesOnly(b"\xef\xbb\xbfone\r\ntwo\nthree")  # a BOM, Windows and no final newline
    texts = encode_io.read_texts(stream, "txt", "t.txt")  # type: ignore[arg-type]
    assert next(texts) == (1, "one")  # one line pulled, nothing more
    assert list(texts) == [(2, "two"), (3, "three")]
