"""A Hugging Face hub on 127.0.0.1, written to the HTTP contract huggingface_hub's client speaks
(read from huggingface_hub 1.x: hf_api.model_info and list_repo_tree, file_download's HEAD and
ranged GET, utils/_http.hf_raise_for_status's X-Error-Code headers).

Not olah: a mirror needs an upstream hub, and this machine has none. The server holds repos in
memory (commits of files, branches pointing at commits) and serves:

    GET  /api/models/{repo}/revision/{rev}   model info: {"id", "sha", "siblings"}
    GET  /api/models/{repo}/tree/{rev}[/dir]  files and folders (recursive=True/False), with
                                              "lfs": {"oid": sha256, "size"} for *.safetensors
    HEAD/GET /{repo}/resolve/{rev}/{path}     X-Repo-Commit, ETag (sha256 for LFS files, the git
                                              blob sha1 otherwise), Content-Length; Range: bytes=N-

Errors carry X-Error-Code as the hub's do: RepoNotFound (401), RevisionNotFound (404),
EntryNotFound (404), GatedRepo (403). Point huggingface_hub at it with HF_ENDPOINT=server.url.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    # path -> bytes served instead of the file's own (a file that arrives wrong)
    served_instead: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    # path -> byte offset: the next GET of that file is cut off there (the connection closed
    # mid-body), once
    cut_at: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    url: str = ""

    def push(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main") -> str:
        """A new commit of `files` on `branch`; returns its 40-hex id."""
        repo = self.repos.setdefault(repo_id, Repo())
        commit = hashlib.sha1(f"{repo_id} {len(repo.commits)}".encode()).hexdigest()
        repo.commits[commit] = dict(files)
        repo.branches[branch] = commit
        return commit

    def push_folder(self, repo_id: str, folder: Path, **extra: bytes) -> str:
        """A commit of every file of `folder` (e.g. a tiny checkpoint), plus `extra` paths."""
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        return self.push(repo_id, {**files, **extra})


class _Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _error(self, status: int, code: str) -> None:
        payload = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, value: object) -> None:
        payload = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self, *, body: bool) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        self.hub.requests.append((self.command, url.path, self.headers.get("Range")))
        api = parts[:2] == ["api", "models"]
        if api:
            parts = parts[2:]
        repo_id, rest = "/".join(parts[:2]), parts[2:]
        repo = self.hub.repos.get(repo_id)
        if repo is None or len(rest) < 2:
            return self._error(401, "RepoNotFound")
        kind, revision, path = rest[0], rest[1], "/".join(rest[2:])
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            return self._error(404, "RevisionNotFound")
        files = repo.commits[commit]
        if api and kind == "revision":
            siblings = [{"rfilename": p} for p in sorted(files)]
            return self._json(
                {"id": repo_id, "sha": commit, "siblings": siblings, "gated": repo.gated}
            )
        if api and kind == "tree":
            recursive = parse_qs(url.query).get("recursive", ["False"])[0] == "True"
            return self._json(_tree(files, path, recursive))
        if kind != "resolve":
            return self._error(404, "EntryNotFound")
        if repo.gated:
            return self._error(403, "GatedRepo")
        if path not in files:
            return self._error(404, "EntryNotFound")
        self._file(path, files[path], repo.served_instead.get(path), commit, body=body)

    def _file(
        self, path: str, data: bytes, instead: bytes | None, commit: str, *, body: bool
    ) -> None:
        etag = hashlib.sha256(data).hexdigest() if _lfs(path) else git_blob_sha1(data)
        data = data if instead is None else instead
        start = 0
        if (wanted := self.headers.get("Range")) and wanted.startswith("bytes="):
            start = int(wanted[6:].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        cut = self.hub.cut_at.pop(path, None)
        if cut is not None and cut < len(data):  # send up to the cut, then hang up
            self.wfile.write(data[start:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])


def _lfs(path: str) -> bool:
    return path.endswith(".safetensors")


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, object]]:
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, object]] = {}
    for path, data in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        below = path[len(prefix) :].split("/")
        if len(below) > 1 and not recursive:
            sub = prefix + below[0]
            entries[sub] = {"type": "directory", "oid": git_blob_sha1(sub.encode()), "path": sub}
            continue
        entry: dict[str, object] = {
            "type": "file",
            "oid": git_blob_sha1(data),
            "size": len(data),
            "path": path,
        }
        if _lfs(path):
            entry["lfs"] = {
                "oid": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "pointerSize": 134,
            }
        entries[path] = entry
    return list(entries.values())


def serve(hub: Hub) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start `hub` on 127.0.0.1 (a free port) in a thread; sets `hub.url`."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
