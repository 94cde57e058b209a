"""The app's background service, as real processes: `tinyllama local --service` started by
the app side, found again through its discovery file, killed with SIGTERM and SIGKILL.

Every test keeps the service's files in tmp_path (TINYLLAMA_RUNTIME_DIR/DATA_DIR), and the
fixture's teardown stops every process that carries that tmp path in its environment.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from backend.entrypoints.local_service import (
    ServicePaths,
    connect_or_start,
    pid_alive,
    read_discovery,
    write_discovery,
)
from desktop.services.local_profile import LocalProfile
from tests.helpers import wait_until
from tests.service_helpers import children, gone, marked, stop_all

LONG = " ".join(f"w{i}" for i in range(200))  # echo: 20 ms a word, ~4 s to answer
FAST = ["--port", "0", "--claim-idle", "0.5"]


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServicePaths]:
    marker = str(tmp_path / "runtime")
    monkeypatch.setenv("TINYLLAMA_RUNTIME_DIR", marker)
    monkeypatch.setenv("TINYLLAMA_DATA_DIR", str(tmp_path / "data"))
    yield ServicePaths.default()
    stop_all(marker)


class Api:
    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, content: str) -> str:
        r = self.session.post(f"{self.url}/prompts", json={"messages": [{"role": "user", "content": content}]},
                              timeout=10)
        assert r.status_code == 202, r.text
        return str(r.json()["request_id"])

    def get(self, rid: str) -> dict:
        r = self.session.get(f"{self.url}/prompts/{rid}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


def test_two_windows_starting_at_once_share_one_service(paths: ServicePaths) -> None:
    results: list[tuple[str, str]] = []
    threads = [threading.Thread(target=lambda: results.append(connect_or_start(FAST))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and len(set(results)) == 1  # one URL and token for all
    info = read_discovery(paths)
    assert info is not None and (info["url"], info["token"]) == results[0]
    services = [p for p in marked(str(paths.runtime_dir)) if "--service" in Path(f"/proc/{p}/cmdline").read_text()]
    assert services == [info["pid"]]
    # Only this user can read the token; nowhere on disk is the Redis password.
    assert stat.S_IMODE(paths.discovery_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.runtime_dir.stat().st_mode) == 0o700
    assert connect_or_start(FAST) == results[0]  # a later window reuses it too


def test_an_answer_outlives_its_client_and_a_kill_9_of_the_service(paths: ServicePaths) -> None:
    api = Api(*connect_or_start(FAST))
    rid = api.post(LONG)
    wait_until(lambda: len(api.get(rid)["text"]) > 20, 20, message="the answer to start")
    info = read_discovery(paths)
    assert info is not None
    kids = children(info["pid"])
    assert len(kids) >= 3  # redis-server, the watchdog and the worker

    os.kill(info["pid"], signal.SIGKILL)  # the service crashes mid-answer
    wait_until(lambda: all(gone(p) for p in kids), 8, message="the service's children to stop")
    assert read_discovery(paths) is not None  # stale: nobody removed it, and the next start copes

    again = Api(*connect_or_start(FAST))  # the next app start
    new_info = read_discovery(paths)
    assert new_info is not None and new_info["pid"] != info["pid"]
    done = wait_until(lambda: (j := again.get(rid))["status"] == "done" and j, 40, message="the answer")
    assert done["text"] == LONG  # kept in Redis's append-only file, finished by the new worker


def test_quitting_the_app_leaves_the_answer_running(paths: ServicePaths) -> None:
    api = Api(*connect_or_start(FAST))
    rid = api.post("still here after the app quit")
    api.session.close()  # the window is gone; nothing of it stops the service
    later = Api(*connect_or_start(FAST))
    assert later.url == api.url
    done = wait_until(lambda: (j := later.get(rid))["status"] == "done" and j, 20, message="the answer")
    assert done["text"] == "still here after the app quit"


def test_sigterm_stops_every_child_and_removes_the_discovery_file(paths: ServicePaths) -> None:
    api = Api(*connect_or_start(FAST))
    rid = api.post("x")
    wait_until(lambda: api.get(rid)["status"] == "done", 20, message="the answer")
    info = read_discovery(paths)
    assert info is not None
    kids = children(info["pid"])
    assert len(kids) >= 3
    os.kill(info["pid"], signal.SIGTERM)
    wait_until(lambda: gone(info["pid"]) and all(gone(p) for p in kids), 20, message="a clean stop")
    assert not paths.discovery_file.exists()
    assert "Traceback" not in paths.log_file.read_text()


def test_an_idle_service_stops_itself(paths: ServicePaths) -> None:
    connect_or_start([*FAST, "--service-idle-timeout", "0.5", "--idle-timeout", "0.5"])
    info = read_discovery(paths)
    assert info is not None
    kids = children(info["pid"])
    wait_until(lambda: not pid_alive(info["pid"]) or gone(info["pid"]), 20, message="the idle stop")
    wait_until(lambda: all(gone(p) for p in kids), 10, message="its children to stop")
    assert not paths.discovery_file.exists()
    assert "idle" in paths.log_file.read_text()


def test_a_second_service_started_by_hand_leaves_the_first_alone(paths: ServicePaths) -> None:
    url, token = connect_or_start(FAST)
    result = subprocess.run([sys.executable, "-m", "backend.entrypoints", "local", "--service", *FAST],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "already running" in result.stdout
    assert json.loads(paths.discovery_file.read_text())["url"] == url
    assert connect_or_start(FAST) == (url, token)


def test_the_app_process_never_loads_the_router_redis_or_powertools(paths: ServicePaths) -> None:
    code = (
        "import sys, json\n"
        "import desktop.app\n"
        "from desktop.services.local_profile import LocalProfile\n"
        "from desktop.services.api import ApiClient\n"
        "profile = LocalProfile(service_args=['--claim-idle', '0.5'])\n"
        "url, token = profile.start()\n"
        "ApiClient(url, profile.token).status()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "      ('redis', 'aws_lambda_powertools') or m.startswith('backend.entrypoints.router')\n"
        "      or m == 'backend.entrypoints.local')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert read_discovery(paths) is not None  # it did connect to a service


def _service_pid(paths: ServicePaths) -> int:
    info = read_discovery(paths)
    assert info is not None
    return int(info["pid"])


def test_a_service_with_another_engine_is_replaced_after_finishing_its_answer(  # type: ignore[no-untyped-def]
        paths: ServicePaths, openai_server) -> None:
    echo = LocalProfile(engine="echo", paths=paths, service_args=FAST[2:])
    api = Api(*echo.start())
    old = _service_pid(paths)
    rid = api.post(LONG)
    wait_until(lambda: api.get(rid)["status"] == "running", 20, message="the answer to start")

    # The person picked another engine in the settings; the app starts again.
    wanted = LocalProfile(engine="openai", engine_url=openai_server.url, model="tiny-llama", paths=paths,
                          service_args=FAST[2:])
    again = Api(*wanted.start())
    assert gone(old)  # the echo service was stopped, not reused
    info = read_discovery(paths)
    assert info is not None and info["pid"] != old
    assert (info["engine"], info["engine_url"], info["model"]) == ("openai", openai_server.url, "tiny-llama")
    # Its SIGTERM is a warm stop: the answer it was running was finished, not cut off,
    # and is in Redis's file for the new service to show.
    done = again.get(rid)
    assert (done["status"], done["text"]) == ("done", LONG)
    assert wanted.start() == (again.url, again.session.headers["Authorization"].split()[1])  # now reused


def test_a_service_of_another_version_is_replaced(paths: ServicePaths) -> None:
    first = LocalProfile(paths=paths, service_args=FAST[2:])
    url, token = first.start()
    old = _service_pid(paths)
    assert first.start() == (url, token)  # same version and engine: reused
    # The app was upgraded while the service of the old version ran: what that one wrote.
    info = read_discovery(paths)
    assert info is not None and info["version"] == first.version
    write_discovery(paths, {**info, "version": "0.0.1"})

    url2, token2 = first.start()
    assert gone(old) and _service_pid(paths) != old and (url2, token2) != (url, token)
    assert read_discovery(paths)["version"] == first.version  # type: ignore[index]


def test_the_servers_api_key_reaches_the_worker_from_the_keyring_and_never_a_command_line(  # type: ignore[no-untyped-def]
        paths: ServicePaths, openai_server) -> None:
    openai_server.api_key = "sk-first"
    keyring = {"key": "sk-first"}
    profile = LocalProfile(engine="openai", engine_url=openai_server.url, model="tiny", paths=paths,
                           service_args=FAST[2:], api_key=lambda: keyring["key"])
    api = Api(*profile.start())
    rid = api.post("hello")
    wait_until(lambda: api.get(rid)["status"] == "done", 20, message="the answer")
    assert api.get(rid)["text"] == "t0 t1 t2 "
    first = _service_pid(paths)
    for pid in [first, *children(first)]:
        assert b"sk-first" not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid  # `ps` shows no key
    assert "sk-first" not in json.dumps(read_discovery(paths))  # only a fingerprint

    # The person pastes a new key in Account → Model…: the service restarts with it.
    openai_server.api_key = keyring["key"] = "sk-second"
    api = Api(*profile.start())
    assert gone(first)
    rid = api.post("again")
    wait_until(lambda: api.get(rid)["status"] == "done", 20, message="the answer with the new key")
    assert openai_server.keys_seen[-1] == "sk-second"
