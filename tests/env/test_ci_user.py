""".ci/run's ordinary user: one left by a killed run goes with its processes and its ACLs,
and the checkout is copied into its home by the user itself. These run the functions of
.ci/run (sourcing it defines them and runs nothing else) as root, with real users, ACLs and
processes; skipped where the test is not root or the tools are missing."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"
USER = "athena-ci-test"  # not .ci/run's own user: a CI run on this machine keeps its user

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in ("useradd", "setfacl", "getfacl", "runuser", "pkill")),
    reason="needs root and useradd, setfacl, getfacl, runuser, pkill",
)


def _ci_run(function: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`function ARGS...` of .ci/run, in bash, after sourcing it."""
    script = f'source "$0" && {function} "$@"'
    return subprocess.run(
        ["bash", "-c", script, str(CI_RUN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


@pytest.fixture
def stale_user() -> Iterator[pwd.struct_passwd]:
    """USER, with a home, as a killed run leaves it; removed afterwards whatever happens."""
    if _exists(USER):
        subprocess.run(["userdel", "--force", "--remove", USER], check=True)
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", USER], check=False)
        if _exists(USER):
            subprocess.run(["userdel", "--force", "--remove", USER], check=False)


def test_a_stale_user_goes_with_its_running_process_and_its_acl(
    stale_user: pwd.struct_passwd, tmp_path: Path
) -> None:
    granted = tmp_path / "granted"
    granted.mkdir()
    subprocess.run(["setfacl", "-m", f"u:{USER}:x", str(granted)], check=True)
    # What its pytest left in /tmp (a next user of the name could not use it).
    left_in_tmp = Path(f"/tmp/pytest-of-{USER}")
    subprocess.run(["runuser", "-u", USER, "--", "mkdir", "-p", f"{left_in_tmp}/x"], check=True)
    # A process of the user, left running (it says "up" once it runs as the user).
    leftover = subprocess.Popen(
        ["runuser", "-u", USER, "--", "sh", "-c", "echo up; exec tail -f /dev/null"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert leftover.stdout is not None and leftover.stdout.readline() == "up\n"
        done = _ci_run("remove_user", USER, str(granted))
        assert done.returncode == 0, done.stderr
        assert leftover.wait(timeout=60) != 0  # killed, not finished
    finally:
        leftover.kill()
        leftover.wait()
    assert not _exists(USER)
    assert not Path(stale_user.pw_dir).exists()
    assert not left_in_tmp.exists()
    acl = subprocess.run(
        ["getfacl", "-n", "-p", str(granted)], capture_output=True, text=True, check=True
    )
    assert f"user:{stale_user.pw_uid}:" not in acl.stdout, acl.stdout
    assert _ci_run("remove_user", USER, str(granted)).returncode == 0  # no such user: nothing


def test_the_checkout_is_copied_by_the_user_into_its_home(
    stale_user: pwd.struct_passwd, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "pkg").mkdir(parents=True)
    (checkout / "pkg" / "tracked.py").write_text("x = 1\n")
    (checkout / "untracked.md").write_text("new\n")
    (checkout / "build.log").write_text("ignored\n")
    (checkout / ".gitignore").write_text("*.log\n")
    git = ["git", "-C", str(checkout)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pkg/tracked.py", ".gitignore"], check=True)
    work = Path(stale_user.pw_dir) / "athena"
    done = _ci_run("copy_as_user", USER, str(checkout), str(work))
    assert done.returncode == 0, done.stderr
    copied = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    assert copied == [".gitignore", "pkg", "pkg/tracked.py", "untracked.md"]
    assert {p.stat().st_uid for p in [work, *work.rglob("*")]} == {stale_user.pw_uid}
    # An existing folder (one the user could have prepared) is not written into.
    again = _ci_run("copy_as_user", USER, str(checkout), str(work))
    assert again.returncode != 0
