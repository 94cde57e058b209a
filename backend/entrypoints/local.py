"""`tinyllama local`: the whole stack on this computer, no AWS account needed.

A private `redis-server` (loopback only, a random password; nothing saved to disk, or an
append-only file in `data_dir` for the app's background service, see `local_service`),
the real router behind a loopback gateway that behaves like the HTTP API, and the worker
as the "instance": started on the first prompt, stopped by its own idle timeout. Stopping
the stack stops every process it started, and a watchdog process stops them if the
stack's own process is killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import redis

from backend.adapters import llamacpp
from backend.adapters.compute_local import (
    DEFAULT_MAX_MODEL_LEN,
    LocalProcessCompute,
    find_vllm,
    subcommand_base,
    vllm_command,
)
from backend.adapters.redis_queue import RedisQueue
from backend.adapters.spend import StaticSpend
from backend.core.service import Budget, PromptService
from backend.entrypoints.gateway import REQUIRED_SCOPE, Gateway, JwtAuthorizer, TokenAuthorizer
from backend.entrypoints.router import Identity, create_app

log = logging.getLogger("tinyllama.local")


# Before any local wake is measured: a Python process start, plus the engine's check.
# (vLLM's own start-up is measured by the first wake and used from then on.)
LOCAL_WAKE_GUESS_S = 3.0


# How often the supervisor looks at redis-server; a dead one is restarted within this.
SUPERVISE_INTERVAL_S = 0.2


class LocalStackError(RuntimeError):
    """The local stack could not start; the message says what to install or change."""


def watchdog_command() -> list[str]:
    """`backend.entrypoints.watchdog` as this interpreter runs it (a frozen bundle: itself)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "watchdog"]
    return [sys.executable, "-m", "backend.entrypoints.watchdog"]


class Watchdog:
    """A child process that stops the stack's process groups if this process dies.

    See `backend.entrypoints.watchdog`: it learns each group through a pipe and acts when
    the pipe closes, which the kernel does however this process ends (`kill -9` too).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(watchdog_command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        self._pipe: IO[bytes] | None = self.proc.stdin

    def _send(self, line: str) -> None:
        with self._lock:
            if self._pipe is None:
                return
            try:
                self._pipe.write(line.encode())
                self._pipe.flush()
            except (BrokenPipeError, ValueError):  # it died: nothing more we can do from here
                self._pipe = None

    def add(self, pgid: int) -> None:
        self._send(f"+ {pgid}\n")

    def remove(self, pgid: int) -> None:
        self._send(f"- {pgid}\n")

    def close(self) -> None:
        """After a clean stop: end the watchdog (whatever is still listed gets stopped)."""
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(BrokenPipeError):
                pipe.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _WatchedCompute(LocalProcessCompute):
    """The local worker (and engine), each process group reported to the watchdog."""

    def __init__(self, *args: Any, watchdog: Watchdog | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.watchdog = watchdog

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        replaced = self._procs.get(name)  # the supervisor restarts a dead child under its name
        proc = super()._spawn(cmd, name)
        if self.watchdog:
            if replaced is not None:
                self.watchdog.remove(replaced.pid)
            self.watchdog.add(proc.pid)  # start_new_session: its pid is its group id
        return proc

    def _reap(self) -> None:
        procs = list(self._procs.values())
        super()._reap()
        if self.watchdog:
            for proc in procs:
                self.watchdog.remove(proc.pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free loopback port, with a random password.

    The password reaches redis-server on its stdin (`redis-server -`), so no file holds it
    and a crash leaves nothing readable behind. With `persist=True` the data lives in an
    append-only file in `workdir` (fsynced every second), so queued and finished answers
    survive a restart of Redis or of the whole stack; otherwise nothing is written.
    `start()` again after a crash reuses the same port and password, so clients already
    configured (the worker's REDIS_URL) reconnect without being told.
    """

    def __init__(self, workdir: str, port: int | None = None, password: str | None = None,
                 *, persist: bool = False, on_spawn: Callable[[int], None] | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(24)
        self.persist = persist
        self.on_spawn = on_spawn
        self.proc: subprocess.Popen[bytes] | None = None
        # Set by stop(), cleared by start(): the supervisor restarts only a Redis that died.
        self.stopped = True

    @property
    def node_url(self) -> str:
        """This redis-server's own address, for a direct (non-cluster) client."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def url(self) -> str:
        """The URL the queue's clients use."""
        return self.node_url

    def _args(self, exe: str) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist
                       else ["--appendonly", "no"])
        return [exe, "-", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
                "--dir", self.workdir, "--protected-mode", "yes"]

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise LocalStackError(
                "redis-server is not installed. Install it with `sudo apt-get install redis-server` "
                "(Debian/Ubuntu), `brew install redis` (macOS), or use WSL on Windows."
            )
        os.makedirs(self.workdir, mode=0o700, exist_ok=True)
        self.stopped = False
        self.proc = subprocess.Popen(
            self._args(exe), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
            start_new_session=True,
        )
        if self.on_spawn:
            self.on_spawn(self.proc.pid)
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it exited at once: reported below
            self.proc.stdin.write(f"requirepass {self.password}\n".encode())
            self.proc.stdin.close()
        # A read timeout too: if another program holds the port, it may accept and never answer.
        # The node itself, not `url`: a subclass may give clients a URL with options (the
        # tests' cluster-mode server adds `?cluster=true`) that a plain client refuses.
        client = redis.Redis.from_url(self.node_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                return self
            except redis.BusyLoadingError:  # replaying a large append-only file
                if time.monotonic() > deadline:
                    raise LocalStackError(f"redis-server on port {self.port} is still loading its data") from None
                threading.Event().wait(0.02)
            except (redis.ConnectionError, redis.TimeoutError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise LocalStackError(f"redis-server did not start on port {self.port}") from None
                threading.Event().wait(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        self.stopped = True
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis fsyncs its append-only file before it exits
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LocalStack:
    """Redis + router gateway + on-demand worker, as one object (also used by tests).

    `engine`: "echo" (default), "llamacpp" (llama.cpp's server on a GGUF file `model`, see
    `backend.adapters.llamacpp`), "vllm" (runs `vllm serve MODEL`; needs vLLM installed) or
    "openai" (any OpenAI-compatible `engine_url`). `cognito` = (region, pool id, client id)
    switches auth from the per-launch token to the JWT authorizer's rules.

    `data_dir` keeps Redis's data there in an append-only file (the background service's
    way: answers and measured wakes survive a restart); without it nothing is saved. A
    supervisor thread restarts redis-server on the same port and password when it dies;
    a watchdog process stops every child if this process dies without `stop()`.
    `wakes_file` keeps the measured wakes of a stack without `data_dir` (`tinyllama local`
    in a terminal) from one run to the next, so its first wake's ETA is a real one too.
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
        data_dir: str | None = None,
        wakes_file: str | None = None,
        watchdog: bool = True,
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
        self.data_dir = data_dir
        self.wakes_file = wakes_file
        self.use_watchdog = watchdog
        self.watchdog: Watchdog | None = None
        self.redis_restarts = 0
        self._restart_failures = 0
        self._last_request = time.monotonic()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._engine_key_secret = secrets.token_urlsafe(24)  # per launch: only our worker may call the engine
        self._gguf: llamacpp.GgufInfo | None = None

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
        elif self.engine == "llamacpp":
            env["ENGINE"] = "llamacpp"
            env["ENGINE_URL"] = f"http://127.0.0.1:{self._engine_port}/v1"
            env[llamacpp.API_KEY_ENV] = self._engine_key_secret
            env[llamacpp.ERROR_FILE_ENV] = os.path.join(self.workdir, "engine-error.txt")
            # No more jobs than the engine has slots: the rest wait in the queue (and say so),
            # not in llama.cpp's own line, where on a CPU they outwait the client's timeout
            # (bench/llamacpp_stack.py, 8 prompts on a TinyLlama-shaped model).
            env["MAX_INFLIGHT"] = str(llamacpp.DEFAULT_PARALLEL)
        else:
            env["ENGINE"] = "openai"
            env["ENGINE_URL"] = self.engine_url or f"http://127.0.0.1:{self._engine_port}/v1"
            if self.model and self.engine == "openai":
                env["MODEL"] = self.model
        return env

    def _engine_cmd(self) -> list[str] | None:
        if self.engine == "llamacpp":
            info = self._gguf_info()
            assert self.model is not None
            return llamacpp.engine_command(subcommand_base(), self.model, self._engine_port,
                                           context=self._llamacpp_context(info))
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
                            max_model_len=self._default_max_model_len())

    def _gguf_info(self) -> llamacpp.GgufInfo:
        """The GGUF's header, read once at start: a wrong file is refused before any wake."""
        if self._gguf is None:
            if not self.model:
                raise LocalStackError("`--engine llamacpp` needs `--model PATH.gguf` (a GGUF model file).")
            try:
                self._gguf = llamacpp.read_gguf_info(self.model)
            except llamacpp.ModelFileError as exc:
                raise LocalStackError(f"{exc} {llamacpp.OTHER_ENGINE_HINT}") from None
        return self._gguf

    @staticmethod
    def _llamacpp_context(info: llamacpp.GgufInfo) -> int:
        # MAX_MODEL_LEN may only lower it: more than the model was trained on is noise.
        context = llamacpp.serving_context(info)
        forced = os.environ.get("MAX_MODEL_LEN")
        return min(context, int(forced)) if forced else context

    @staticmethod
    def _default_max_model_len() -> int:
        return int(os.environ.get("MAX_MODEL_LEN") or DEFAULT_MAX_MODEL_LEN)

    def context_tokens(self) -> int | None:
        """The context the engine will serve, when the stack decides it: vLLM's
        `--max-model-len` (the caller's own in `vllm_args` wins, as in `vllm_command`).
        llamacpp: the GGUF's own context length (each slot gets all of it).
        Other engines report theirs once a worker has run; None until then."""
        if self.engine == "llamacpp":
            return self._llamacpp_context(self._gguf_info())
        if self.engine != "vllm":
            return None
        for i, arg in enumerate(self.vllm_args):
            if arg.startswith("--max-model-len="):
                return int(arg.split("=", 1)[1])
            if arg == "--max-model-len" and i + 1 < len(self.vllm_args):
                return int(self.vllm_args[i + 1])
        return self._default_max_model_len()

    def model_name(self) -> str | None:
        """The model as its worker will name it: a GGUF file's stem (the id llama.cpp's
        server lists), else the model as given; None for echo."""
        if self.engine == "echo" or not self.model:
            return None
        if self.engine == "llamacpp":
            return Path(self.model).stem
        return self.model

    def start(self) -> LocalStack:
        try:
            self._stopping.clear()
            self._engine_port = free_port()
            if self.use_watchdog:
                self.watchdog = Watchdog()
            on_spawn = self.watchdog.add if self.watchdog else None
            if self.data_dir:
                self.redis = RedisServer(os.path.join(self.data_dir, "redis"), persist=True, on_spawn=on_spawn)
            else:
                self.redis = RedisServer(self.workdir, on_spawn=on_spawn)
            self.redis.start()
            self.queue = RedisQueue.from_url(self.redis.url, result_ttl_s=self.result_ttl_s)
            if self.data_dir:
                # Data kept by a version before the queue's hash tag: answers, queued jobs and
                # measured wakes move to today's key names before anything writes.
                self.queue.adopt_legacy_keys()
            self.queue.ensure_group()
            self.queue.keep_wakes_of(self._engine_key())
            self.queue.restore_wakes(self._saved_wakes().get(self._engine_key(), []))
            self.compute = _WatchedCompute(self.worker_env(), engine_cmd=self._engine_cmd(),
                                           log_dir=self.workdir, watchdog=self.watchdog, queue=self.queue)
            service = PromptService(
                self.queue, self.compute, StaticSpend(self.spend_usd),
                Budget(self.warning_usd, self.hard_cap_usd),
                default_wake_s=LOCAL_WAKE_GUESS_S,
                # Known before the first wake, so the first over-long prompt is refused
                # (413) without starting vLLM for nothing.
                context_tokens=self.context_tokens(),
                # Named in /status before any worker runs: a switched engine shows at once.
                engine=self.engine, model=self.model_name(),
            )
            if self.cognito:
                from backend.adapters.jwt_verify import CognitoVerifier

                region, pool, client = self.cognito
                # The scope the deployed stack's routes require, so a token AWS would
                # turn away (403) is turned away here too.
                authorizer: Any = JwtAuthorizer(CognitoVerifier(region, pool, client, required_scope=REQUIRED_SCOPE))
            else:
                authorizer = TokenAuthorizer(self.token)
            # A factory, not one resolver: the gateway gives each concurrent request its own.
            self.gateway = Gateway(lambda: _Activity(create_app(service, Identity()), self._touch),
                                   authorizer, port=self.port).start()
            if self.queue.depth():
                # Jobs saved by an earlier run of the stack: its worker is gone, so wake one.
                service.wake()
            self._supervisor = threading.Thread(target=self._supervise, name="redis-supervisor", daemon=True)
            self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _touch(self) -> None:
        self._last_request = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last authorised request, or 0 while a job is queued or running
        (or Redis cannot tell): the background service stops itself when this passes its
        idle timeout."""
        try:
            if self.queue is None or self.queue.depth():
                return 0.0
        except redis.RedisError:
            return 0.0
        return time.monotonic() - self._last_request

    def _supervise(self) -> None:
        """Restart redis-server (same port, password and data) when it dies unasked;
        after a failed restart wait longer each time (up to 5 s) rather than spin."""
        pause = SUPERVISE_INTERVAL_S
        while not self._stopping.wait(pause):
            pause = SUPERVISE_INTERVAL_S
            server = self.redis
            if server is None or server.stopped or server.proc is None or server.proc.poll() is None:
                continue
            log.warning("redis-server exited (code %s); restarting it on port %d",
                        server.proc.returncode, server.port)
            if self.watchdog:
                self.watchdog.remove(server.proc.pid)
            try:
                server.start()
                assert self.queue is not None
                self.queue.ensure_group()  # without persistence the stream and group are gone
            except (LocalStackError, redis.RedisError) as exc:
                self._restart_failures += 1
                pause = min(5.0, SUPERVISE_INTERVAL_S * 2 ** self._restart_failures)
                log.error("could not restart redis-server: %s; trying again in %.1f s", exc, pause)
                continue
            self._restart_failures = 0
            self.redis_restarts += 1
            log.info("redis-server is back on port %d", server.port)

    def stop(self) -> None:
        """Stop the gateway, the worker (warm, then killed) and Redis; remove the workdir."""
        self._stopping.set()
        if self._supervisor:
            self._supervisor.join()
            self._supervisor = None
        if self.gateway:
            self.gateway.stop()
            self.gateway = None
        if self.compute:
            self.compute.stop()
        self._save_wakes()
        if self.redis:
            self.redis.stop()
            if self.watchdog and self.redis.proc:
                self.watchdog.remove(self.redis.proc.pid)
        if self.watchdog:
            self.watchdog.close()
            self.watchdog = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- measured wakes --------------------------------------------------------------------
    def _engine_key(self) -> str:
        """What a wake's length depends on: the engine and its model."""
        return json.dumps([self.engine, self.model or "", self.engine_url or "", self.vllm_args])

    def _saved_wakes(self) -> dict[str, list[dict[str, float]]]:
        if not self.wakes_file:
            return {}
        try:
            saved = json.loads(Path(self.wakes_file).read_text())
        except (OSError, ValueError):
            return {}  # none yet, or a file cut short: the guess serves until a wake is measured
        return saved if isinstance(saved, dict) else {}

    def _save_wakes(self) -> None:
        if not (self.wakes_file and self.queue):
            return
        try:
            wakes = self.queue.wake_history()
        except redis.RedisError as exc:
            log.warning("could not keep the measured wakes: %s", exc)
            return
        if not wakes:
            return
        saved = {**self._saved_wakes(), self._engine_key(): wakes}
        path = Path(self.wakes_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(saved))
        os.replace(tmp, path)  # a run killed halfway leaves the old file, never half a new one

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Activity:
    """The router as the gateway calls it, noting when an authorised request came (the
    gateway calls the router only after its authorizer let a request through)."""

    def __init__(self, app: Any, touch: Callable[[], None]):
        self.app = app
        self.touch = touch

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.touch()
        return dict(self.app.resolve(event, context))


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
