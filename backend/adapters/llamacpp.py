"""The `llamacpp` engine: llama.cpp's own OpenAI-compatible server, from the `xllamacpp` wheel.

The local stack starts it on wake and stops it on idle exactly as it starts `vllm serve`:
a child process (`tinyllama llamacpp-server ...`, so the frozen app can run it too) on
127.0.0.1 and a free port, with a per-launch API key (from the environment, never on the
command line where `ps` shows it), the web UI off, threads = physical cores, several
parallel slots (continuous batching: concurrent prompts share each decoding step), the
model's own context length for every slot, and the GGUF's own chat template (Zephyr, the
TinyLlama-Chat format, when the file has none). The worker talks to it with the same
`OpenAIEngine` as to vLLM.

What the stack needs to know before any wake (the context length, for the prompt limits;
whether the file is a GGUF at all) comes from the file's header, read here without the
`gguf` package (numpy and more, for a few header fields).

When the engine cannot run here — not a GGUF, a CPU without the instructions the wheel
needs (AVX2 on x86), a model that does not load — `serve` writes a sentence to
`$ENGINE_ERROR_FILE` and exits with `CANNOT_LOAD_EXIT`; the local supervisor then fails
the waiting prompts with that sentence at once instead of restarting it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# EX_CONFIG (sysexits.h): "something was found in an unconfigured or misconfigured state".
CANNOT_LOAD_EXIT = 78
API_KEY_ENV = "ENGINE_API_KEY"
ERROR_FILE_ENV = "ENGINE_ERROR_FILE"
DEFAULT_PARALLEL = 4  # slots: concurrent prompts batched together; each gets the full context
DEFAULT_CONTEXT = 2048  # a GGUF that does not say (TinyLlama-1.1B-Chat's own)
# Memory is per slot; a model that claims a huge context (128k) would take GiBs of KV cache
# per slot. Prompts past this are refused before a wake, with the figure in the message.
MAX_CONTEXT = 8192
OTHER_ENGINE_HINT = (
    "You can use any OpenAI-compatible server instead (Ollama, LM Studio, a hosted API): "
    "`tinyllama local --engine openai --engine-url URL`, or choose it in the app's settings."
)

# TinyLlama-1.1B-Chat's template (Zephyr format), for a GGUF file that carries none.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)


class ModelFileError(ValueError):
    """The file is not a GGUF model this engine can read; the message says so in words."""


@dataclass(frozen=True)
class GgufInfo:
    """The few header fields the stack needs before starting the engine."""

    architecture: str
    context_length: int | None
    chat_template: str | None
    name: str | None


# GGUF metadata value types (gguf spec): fixed-size ones by struct code.
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def read_gguf_info(path: str | os.PathLike[str]) -> GgufInfo:
    """Read a GGUF file's architecture, context length, chat template and name.

    Only the metadata at the head of the file is read (arrays such as the vocabulary
    are skipped, not loaded). Raises `ModelFileError` for anything that is not a GGUF.
    """
    file = Path(path)
    try:
        with file.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelFileError(f"{file.name} is not a GGUF model file (llama.cpp reads only .gguf files).")
            version, _tensors, count = struct.unpack("<IQQ", _exact(f, 20))
            if version < 2:
                raise ModelFileError(f"{file.name} is a GGUF version {version} file; re-download a current one.")
            meta: dict[str, Any] = {}
            for _ in range(count):
                key = _string(f)
                meta[key] = _value(f, struct.unpack("<I", _exact(f, 4))[0], keep=key in _WANTED or
                                    key.endswith(".context_length"))
    except FileNotFoundError:
        raise ModelFileError(f"There is no model file at {file}.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{file} is a folder; choose the .gguf file itself.") from None
    except (OSError, struct.error, UnicodeDecodeError, _Truncated) as exc:
        raise ModelFileError(f"{file.name} could not be read as a GGUF model ({exc.__class__.__name__}); "
                             f"it may be cut short: download it again.") from None
    arch = str(meta.get("general.architecture") or "")
    context = meta.get(f"{arch}.context_length")
    template = meta.get("tokenizer.chat_template")
    name = meta.get("general.name")
    return GgufInfo(arch, int(context) if isinstance(context, int) and context > 0 else None,
                    template if isinstance(template, str) and template.strip() else None,
                    name if isinstance(name, str) else None)


_WANTED = {"general.architecture", "tokenizer.chat_template", "general.name"}


class _Truncated(Exception):
    pass


def _exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Truncated()
    return data


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", _exact(f, 8))
    if n > 1 << 26:  # no header string is 64 MiB: this is not a GGUF's metadata
        raise _Truncated()
    return _exact(f, n).decode("utf-8")


def _value(f: BinaryIO, kind: int, *, keep: bool) -> Any:
    if kind in _FIXED:
        code = _FIXED[kind]
        return struct.unpack("<" + code, _exact(f, struct.calcsize(code)))[0]
    if kind == _STRING:
        if keep:
            return _string(f)
        (n,) = struct.unpack("<Q", _exact(f, 8))
        f.seek(n, os.SEEK_CUR)
        return None
    if kind == _ARRAY:
        inner, n = struct.unpack("<IQ", _exact(f, 12))
        if inner in _FIXED:  # skip it in one seek: the vocabulary's scores are 32000 floats
            f.seek(n * struct.calcsize(_FIXED[inner]), os.SEEK_CUR)
        else:
            for _ in range(n):
                _value(f, inner, keep=False)
        return None
    raise _Truncated()


def serving_context(info: GgufInfo) -> int:
    """The context each slot gets: the model's own, bounded by `MAX_CONTEXT`."""
    return min(info.context_length or DEFAULT_CONTEXT, MAX_CONTEXT)


def physical_cores() -> int:
    """CPU cores this process may use, counting each physical core once.

    llama.cpp's decoding is memory-bound; a second hyper-thread on a core only adds
    contention, so threads = physical cores (within this process's CPU affinity).
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    cores: set[str] = set()
    for cpu in allowed or []:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text()
        except OSError:
            cores = set()
            break
        cores.add(siblings.strip())
    if cores:
        return max(1, len(cores))
    if sys.platform == "darwin":
        import subprocess

        with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
            return max(1, int(subprocess.check_output(["sysctl", "-n", "hw.physicalcpu"], text=True)))
    return max(1, logical // 2 if logical >= 4 else logical)


def cpu_problem() -> str | None:
    """Why this CPU cannot run the engine, or None. The x86 wheels need AVX2 (and FMA/F16C);
    without them llama.cpp dies of an illegal instruction, which says nothing to a person."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        return None  # not Linux: trust the wheel, the supervisor words a crash
    if flags and "avx2" not in flags.split():
        return ("This computer's processor lacks AVX2, which the built-in llama.cpp engine needs "
                "(processors from about 2013 on have it).")
    return None


def engine_command(base: Sequence[str], model: str, port: int, *, context: int,
                   parallel: int = DEFAULT_PARALLEL, threads: int | None = None,
                   chat_template_file: str | None = None) -> list[str]:
    """`<base> llamacpp-server ...`: `base` is how this interpreter runs a backend subcommand."""
    cmd = [*base, "llamacpp-server", "--model", model, "--port", str(port), "--context", str(context),
           "--parallel", str(parallel), "--threads", str(threads or physical_cores())]
    if chat_template_file:
        cmd += ["--chat-template-file", chat_template_file]
    return cmd


def _fail(message: str) -> int:
    """Say why the engine cannot run, where the supervisor reads it, and exit for good."""
    print(f"llamacpp-server: {message}", file=sys.stderr, flush=True)
    target = os.environ.get(ERROR_FILE_ENV)
    if target:
        with contextlib.suppress(OSError):
            Path(target).write_text(message)
    return CANNOT_LOAD_EXIT


def serve(model: str, port: int, *, context: int, parallel: int, threads: int,
          chat_template_file: str | None = None, host: str = "127.0.0.1") -> int:
    """Run llama.cpp's server until SIGTERM/SIGINT (the `llamacpp-server` subcommand)."""
    problem = cpu_problem()
    if problem:
        return _fail(f"{problem} {OTHER_ENGINE_HINT}")
    try:
        info = read_gguf_info(model)
    except ModelFileError as exc:
        return _fail(f"{exc} {OTHER_ENGINE_HINT}")
    try:
        import xllamacpp as xlc
    except ImportError as exc:  # a broken install, or a platform with no wheel
        return _fail(f"The llama.cpp engine (xllamacpp) is not installed here ({exc}). {OTHER_ENGINE_HINT}")

    params = xlc.CommonParams()
    params.model.path = model
    params.model_alias = {Path(model).stem}  # the id /v1/models lists: the file's name, not its full path
    params.hostnames = [host]
    params.port = port
    params.ui = False  # the app is the interface; no web page on a local port
    params.api_keys = [os.environ.get(API_KEY_ENV) or ""] if os.environ.get(API_KEY_ENV) else []
    # Every slot gets the whole context: not one KV cache shared by all (kv_unified), where
    # one long conversation could starve the others.
    params.n_parallel = parallel
    params.kv_unified = False
    params.n_ctx = context * parallel
    params.cont_batching = True
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.endpoint_metrics = True
    params.use_jinja = True
    if chat_template_file:
        params.chat_template = Path(chat_template_file).read_text()
    elif info.chat_template is None:
        params.chat_template = ZEPHYR_TEMPLATE
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        server = xlc.Server(params)
    except Exception as exc:  # llama.cpp reports a model it cannot load as an exception
        return _fail(f"The llama.cpp engine could not load {Path(model).name}: {exc}. {OTHER_ENGINE_HINT}")
    print(f"llamacpp-server: {Path(model).name} on {server.listening_address} "
          f"({parallel} slots x {context} tokens, {threads} threads)", flush=True)
    done.wait()
    del server  # stops the HTTP server and the slots; in-flight streams end
    return 0
