"""The README's two set-up commands and .ci/run, which runs the second: the apt part asks
for what Qt and the Local profile need, with sudo only when not root and `apt-get update`
first; .ci/run finds the test command and fails when the tests leave the checkout dirty.

The apt part runs for real under bash, with `id`, `dpkg`, `sudo` and `apt-get` replaced by
scripts on PATH that log their arguments (a test cannot install packages or become root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from desktop.core.platform_check import XCB_LIBRARIES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
AWK = "/^Install everything and run every test/ {found=1} found && /^```sh/ {getline; print; exit}"


def commands() -> list[str]:
    """The README's ```sh blocks of the set-up section, in order."""
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0].strip() for block in section.split("```sh\n")[1:]]


def apt_part(command: str) -> str:
    return command.split(" && python3 -m venv", 1)[0]


def test_exactly_two_commands_and_ci_finds_the_test_one() -> None:
    app, tests = commands()
    found = subprocess.run(["awk", AWK, str(ROOT / "README.md")], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == tests and tests.endswith(".venv/bin/python -m pytest")
    assert app.endswith(".venv/bin/tinyllama")
    assert apt_part(app) == apt_part(tests)


def test_the_commands_install_every_library_qt_xcb_loads() -> None:
    packages = apt_part(commands()[0]).split("set -- ", 1)[1].split(";", 1)[0].split()
    assert {"redis-server", "python3-venv", *XCB_LIBRARIES.values()} <= set(packages)


def _fake_bin(tmp_path: Path, uid: int, installed: bool) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    scripts = {"id": f"echo {uid}", "dpkg": f"exit {0 if installed else 1}",
               "sudo": f'echo "sudo $*" >> {log}; "$@"', "apt-get": f'echo "apt-get $*" >> {log}'}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return env, log


def _run_apt_part(tmp_path: Path, uid: int, installed: bool) -> list[str]:
    env, log = _fake_bin(tmp_path, uid, installed)
    subprocess.run(["bash", "-c", apt_part(commands()[1])], env=env, check=True, timeout=30, cwd=tmp_path)
    return log.read_text().splitlines() if log.exists() else []


def test_root_without_sudo_updates_then_installs(tmp_path: Path) -> None:
    calls = _run_apt_part(tmp_path, uid=0, installed=False)
    assert [c.split()[:2] for c in calls] == [["apt-get", "update"], ["apt-get", "install"]]
    assert "libxcb-icccm4" in calls[1] and "redis-server" in calls[1]


def test_a_user_goes_through_sudo(tmp_path: Path) -> None:
    calls = _run_apt_part(tmp_path, uid=1000, installed=False)
    assert calls[0] == "sudo apt-get update -qq" and calls[1] == "apt-get update -qq"
    assert calls[2].startswith("sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "
                               "redis-server")


def test_nothing_is_asked_of_apt_when_all_is_installed(tmp_path: Path) -> None:
    assert _run_apt_part(tmp_path, uid=1000, installed=True) == []  # works offline, and without sudo


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize(("test_line", "clean"), [("true", True), ("touch stray.txt", False)])
def test_ci_fails_when_the_tests_leave_the_checkout_dirty(tmp_path: Path, test_line: str, clean: bool) -> None:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    (repo / "README.md").write_text(f"Install everything and run every test:\n\n```sh\n{test_line}\n```\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True, env=env)
    run = subprocess.run(["bash", ".ci/run"], cwd=repo, capture_output=True, text=True, timeout=60, env=env)
    assert (run.returncode == 0) is clean, run.stderr
    assert ("?? stray.txt" in run.stderr) is not clean
