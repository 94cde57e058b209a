"""`tinyllama local`: the whole stack on this computer, no AWS account needed.

A private `redis-server` (loopback only, a random password, nothing saved to disk), the
real router behind a loopback gateway that behaves like the HTTP API, and the worker as
the "instance": started on the first prompt, stopped by its own idle timeout. Stopping
the stack stops every process it started.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

import redis

from backend.adapters.compute_local import DEFAULT_MAX_MODEL_LEN, LocalProcessCompute, find_vllm, vllm_command
from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.service import Budget, PromptService
from backend.entrypoints.gateway import Gateway, JwtAuthorizer, TokenAuthorizer
from backend.entrypoints.router import Identity, create_app

log = logging.getLogger("tinyllama.local")


# Before any local wake is measured: a Python process start, plus the engine's check.
# (vLLM's own start-up is measured by the first wake and used from then on.)
LOCAL_WAKE_GUESS_S = 3.0


class LocalStackError(RuntimeError):
    """The local stack could not start; the message says what to install or change."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free loopback port, with a random password."""

    def __init__(self, workdir: str, port: int | None = None, password: str | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise LocalStackError(
                "redis-server is not installed. Install it with `sudo apt-get install redis-server` "
                "(Debian/Ubuntu), `brew install redis` (macOS), or use WSL on Windows."
            )
        conf = os.path.join(self.workdir, "redis.conf")
        with open(conf, "w") as f:
            os.chmod(conf, 0o600)  # it holds the password
            f.write(f"requirepass {self.password}\n")
        self.proc = subprocess.Popen(
            [exe, conf, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise LocalStackError(f"redis-server did not start on port {self.port}") from None
                threading.Event().wait(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LocalStack:
    """Redis + router gateway + on-demand worker, as one object (also used by tests).

    `engine`: "echo" (default), "vllm" (runs `vllm serve MODEL`; needs vLLM installed) or
    "openai" (any OpenAI-compatible `engine_url`). `cognito` = (region, pool id, client id)
    switches auth from the per-launch token to the JWT authorizer's rules.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        engine: str = "echo",
        token: str | None = None,
        idle_timeout_s: float = 900.0,
        echo_delay_s: float = 0.02,
        engine_url: str | None = None,
        model: str | None = None,
        vllm_args: list[str] | None = None,
        cognito: tuple[str, str, str] | None = None,
        spend_usd: float | None = None,
        warning_usd: float | None = None,
        hard_cap_usd: float | None = None,
        result_ttl_s: int = 300,
        claim_idle_s: float = 30.0,
        heartbeat_s: float = 1.0,
        workdir: str | None = None,
    ):
        self.port = port
        self.engine = engine
        self.token = token or secrets.token_urlsafe(24)
        self.idle_timeout_s = idle_timeout_s
        self.echo_delay_s = echo_delay_s
        self.engine_url = engine_url
        self.model = model
        self.vllm_args = vllm_args or []
        self.cognito = cognito
        self.spend_usd = spend_usd
        self.warning_usd = warning_usd
        self.hard_cap_usd = hard_cap_usd
        self.result_ttl_s = result_ttl_s
        self.claim_idle_s = claim_idle_s
        self.heartbeat_s = heartbeat_s
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="tinyllama-local-")
        self.redis: RedisServer | None = None
        self.compute: LocalProcessCompute | None = None
        self.gateway: Gateway | None = None
        self.queue: RedisQueue | None = None

    @property
    def url(self) -> str:
        assert self.gateway is not None, "start() the stack first"
        return self.gateway.url

    def worker_env(self) -> dict[str, str]:
        assert self.redis is not None
        env = {
            "REDIS_URL": self.redis.url,
            "IDLE_TIMEOUT_S": str(self.idle_timeout_s),
            "IDLE_ACTION": "exit",
            "RESULT_TTL_S": str(self.result_ttl_s),
            "CLAIM_IDLE_S": str(self.claim_idle_s),
            "HEARTBEAT_S": str(self.heartbeat_s),
            "ECHO_DELAY_S": str(self.echo_delay_s),
            "PYTHONUNBUFFERED": "1",
        }
        if self.engine == "echo":
            env["ENGINE"] = "echo"
        else:
            env["ENGINE"] = "openai"
            env["ENGINE_URL"] = self.engine_url or f"http://127.0.0.1:{self._engine_port}/v1"
            if self.model and self.engine == "openai":
                env["MODEL"] = self.model
        return env

    def _engine_cmd(self) -> list[str] | None:
        if self.engine != "vllm":
            return None
        exe = find_vllm()
        if exe is None:
            raise LocalStackError(
                "vLLM is not installed here. Use `--engine echo`, or `--engine openai --engine-url URL` "
                "for any OpenAI-compatible server, or install vLLM (`pip install 'tinyllama[gpu]'`, "
                "or set TINYLLAMA_VLLM to a `vllm` executable)."
            )
        if not self.model:
            raise LocalStackError("`--engine vllm` needs `--model` (a local path or a model name).")
        return vllm_command(exe, self.model, self._engine_port, workdir=self.workdir, extra=self.vllm_args,
                            max_model_len=int(os.environ.get("MAX_MODEL_LEN") or DEFAULT_MAX_MODEL_LEN))

    def start(self) -> LocalStack:
        try:
            self._engine_port = free_port()
            self.redis = RedisServer(self.workdir).start()
            self.queue = RedisQueue.from_url(self.redis.url, result_ttl_s=self.result_ttl_s)
            self.queue.ensure_group()
            self.compute = LocalProcessCompute(self.worker_env(), engine_cmd=self._engine_cmd(),
                                               log_dir=self.workdir)
            service = PromptService(
                self.queue, self.compute, StaticSpend(self.spend_usd),
                Budget(self.warning_usd, self.hard_cap_usd),
                default_wake_s=LOCAL_WAKE_GUESS_S,
            )
            if self.cognito:
                from backend.adapters.jwt_verify import CognitoVerifier

                region, pool, client = self.cognito
                authorizer: Any = JwtAuthorizer(CognitoVerifier(region, pool, client))
            else:
                authorizer = TokenAuthorizer(self.token)
            app = create_app(service, Identity())
            self.gateway = Gateway(app, authorizer, port=self.port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway, the worker (warm, then killed) and Redis; remove the workdir."""
        if self.gateway:
            self.gateway.stop()
            self.gateway = None
        if self.compute:
            self.compute.stop()
        if self.redis:
            self.redis.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(stack: LocalStack) -> int:
    """Run until Ctrl-C or SIGTERM, then stop everything."""
    done = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except LocalStackError as exc:
        print(f"tinyllama local: {exc}")
        return 2
    print(f"TinyLlama local API on {stack.url}  (engine: {stack.engine})", flush=True)
    if not stack.cognito:
        print(f"Bearer token: {stack.token}", flush=True)
    print("Ctrl-C stops it and everything it started.", flush=True)
    try:
        done.wait()
    finally:
        print("stopping…", flush=True)
        stack.stop()
    return 0
