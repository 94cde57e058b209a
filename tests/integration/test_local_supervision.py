"""The local "instance" keeps itself alive: real child processes, real redis-server.

A worker killed with work in hand is started again at once (no client poll needed), an
engine that cannot start fails the waiting prompts with its own last words after a few
tries, and an engine's children die with it.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from backend.adapters.compute_local import LocalProcessCompute
from backend.adapters.redis_queue import RedisQueue
from backend.core.jobs import JobStatus
from backend.core.prompts import parse_prompt
from backend.entrypoints.local import LocalStack, RedisServer
from tests.helpers import wait_until

LONG = " ".join(f"w{i}" for i in range(300))


def _status(queue: RedisQueue, rid: str) -> str | None:
    value = queue.r.hget(queue.key("req", rid), "status")
    return value.decode() if value else None


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # a zombie is dead, only unreaped
    except FileNotFoundError:
        return True


@pytest.fixture
def compute_factory(redis_server: RedisServer, tmp_path: Path) -> Iterator[object]:
    made: list[LocalProcessCompute] = []

    def make(engine_cmd: list[str], **env: str) -> LocalProcessCompute:
        worker_env = {"REDIS_URL": redis_server.url, "IDLE_TIMEOUT_S": "0", "HEARTBEAT_S": "0.2",
                      "PYTHONUNBUFFERED": "1", **env}
        c = LocalProcessCompute(worker_env, engine_cmd=engine_cmd, log_dir=str(tmp_path))
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def test_a_killed_worker_is_restarted_at_once_and_its_job_completes() -> None:
    with LocalStack(port=0, echo_delay_s=0.01, claim_idle_s=60.0, heartbeat_s=0.2) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"
        rid = session.post(f"{stack.url}/prompts", json={"messages": [{"role": "user", "content": LONG}]},
                           timeout=10).json()["request_id"]
        assert stack.queue is not None and stack.compute is not None
        wait_until(lambda: len(stack.queue.r.hget(stack.queue.key("req", rid), "text") or b"") > 20, 20,
                   message="the answer to start")
        (worker_pid,) = stack.compute.pids
        os.kill(worker_pid, signal.SIGKILL)

        # No client polls from here on: the stack itself must bring the worker back, and
        # the new worker must take the job without the 60 s silence of the idle claim.
        wait_until(lambda: stack.compute.pids and stack.compute.pids != [worker_pid], 3,
                   message="a new worker, without any poll")
        wait_until(lambda: _status(stack.queue, rid) == JobStatus.DONE, 20, message="the job to be done")
        assert stack.queue.r.hget(stack.queue.key("req", rid), "text") == LONG.encode()
        assert stack.queue.r.hget(stack.queue.key("req", rid), "attempt") == b"2"


def test_an_engine_that_cannot_start_fails_the_waiting_prompts_with_its_log(
        compute_factory, queue: RedisQueue) -> None:  # type: ignore[no-untyped-def]
    crash = [sys.executable, "-c", "print('loading model'); print('CUDA out of memory: tried 2 GiB'); exit(1)"]
    compute = compute_factory(crash, ENGINE="openai", ENGINE_URL="http://127.0.0.1:9/v1")
    rid, _ = queue.submit("owner", parse_prompt({"messages": [{"role": "user", "content": "hi"}]}), JobStatus.WAKING)
    compute.start()

    job = wait_until(lambda: (j := queue.get("owner", rid))["status"] == JobStatus.FAILED and j, 30,
                     message="the prompt to fail")
    assert job["error"]["code"] == "engine_failed"
    assert "stopped 3 times" in job["error"]["message"]
    assert "CUDA out of memory: tried 2 GiB" in job["error"]["message"]
    assert compute.restarts == 2
    wait_until(lambda: compute.describe().state == "stopped", 5, message="the instance to count as stopped")
    assert compute.pids == []


def test_the_engines_children_die_with_it(compute_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    child_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(child_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
    """)
    compute = compute_factory([sys.executable, "-c", script], ENGINE="echo")
    compute.start()
    child = int(wait_until(lambda: child_file.exists() and child_file.read_text(), 10, message="the child's pid"))
    leader = compute.pids[0]
    os.kill(leader, signal.SIGKILL)
    wait_until(lambda: _gone(child), 3, message="the engine's child to die with it")


def test_status_stops_saying_ready_when_the_engine_stops_answering(openai_server) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(port=0, engine="openai", engine_url=openai_server.url, heartbeat_s=0.2) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {stack.token}"

        def state() -> str:
            return session.get(f"{stack.url}/status", timeout=10).json()["compute"]["state"]

        rid = session.post(f"{stack.url}/prompts", json={"messages": [{"role": "user", "content": "hi"}]},
                           timeout=10).json()["request_id"]
        wait_until(lambda: session.get(f"{stack.url}/prompts/{rid}", timeout=10).json()["status"] == "done", 20,
                   message="the first answer")
        assert state() == "ready"
        openai_server.answering = False
        wait_until(lambda: state() == "loading_model", 5, message="/status to stop saying ready")
        openai_server.answering = True
        wait_until(lambda: state() == "ready", 5, message="/status to say ready again")
