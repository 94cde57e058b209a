"""The llamacpp engine: tokens/s and first token through the whole local stack vs straight to it.

`python -m bench llamacpp_stack` uses the tests' tiny random GGUF (a quick run);
`TINYLLAMA_BENCH_SHAPED=1` makes a TinyLlama-shaped random model instead (Q4_0, ~850 MB,
written to a temporary folder and removed after; nothing is downloaded or committed), or
`TINYLLAMA_BENCH_MODEL=path.gguf` uses a file you have.
Both sides ask the same server for the same work: a fixed prompt, fixed max_tokens, and
answers that never stop early (the model's EOS row is zero), so tokens are comparable.

The stack side is the app's own client: it polls at `desktop.core.polling`'s intervals
(0.25 s while streaming, 0.5 s for a slow stream, 2 s for an answer whose chat is not on
screen), so "stack" is what a person sees. Eight answers at once are eight chats of one
person (the local stack has one user), one of them on screen: that is how the app polls
them. The same eight polled as if each were on screen are printed too, as the worst case.
Polling every few ms instead measured the benchmark, not the stack: on 2 cores those polls
took ~40 % of a core from llama.cpp (stack 0.68 of direct for one stream). Each rate is
printed as the app saw the answers end and, in brackets, until the worker ended them (the
answers' own timings: no poll delay in them). Rounds alternate direct and stack, and the
median round counts, because these machines are shared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from backend.adapters import llamacpp
from backend.adapters.compute_local import subcommand_base
from backend.entrypoints.local import LocalStack, free_port
from bench._stats import pct
from desktop.core.polling import PromptPace
from tests.fixtures.tiny_gguf import write_llama_gguf

MAX_TOKENS = 128
ROUNDS = 3
MESSAGES = [{"role": "user", "content": "Tell me about llamas."}]
_pause = threading.Event()


def _model(folder: Path) -> Path:
    if os.environ.get("TINYLLAMA_BENCH_MODEL"):
        return Path(os.environ["TINYLLAMA_BENCH_MODEL"])
    if os.environ.get("TINYLLAMA_BENCH_SHAPED"):
        return write_llama_gguf(folder / "tinyllama-shaped.gguf", n_embd=2048, n_layer=22, n_head=32, n_head_kv=4,
                                n_ff=5632, vocab_size=32000, context=2048, quantized=True)
    return write_llama_gguf(folder / "tiny.gguf", context=2048, n_embd=128, n_layer=4, n_ff=256)


def _direct(url: str, key: str) -> tuple[float, float, int]:
    """(first token s, total s, tokens) of one streamed answer straight from the engine."""
    start = time.perf_counter()
    first = None
    with requests.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, stream=True,
                       json={"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0.7, "stream": True},
                       timeout=300) as r:
        for line in r.iter_lines():
            if first is None and b'"content":"' in line:
                first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start, MAX_TOKENS


def _through(session: requests.Session, url: str, on_screen: bool = True) -> tuple[float, float, int]:
    """(first token s, total s, tokens) of one answer as the app sees it: polled at its intervals.

    `STACK_OWN` keeps the stack's own (first token, end) from the answer's timings: the end
    is when the worker finished it, on this clock."""
    start = time.perf_counter()
    rid = session.post(f"{url}/prompts", json={"messages": MESSAGES, "max_tokens": MAX_TOKENS}, timeout=10).json()[
        "request_id"]
    first = None
    pace = PromptPace(on_screen)
    while True:
        job = session.get(f"{url}/prompts/{rid}", timeout=10).json()
        if first is None and job["text"]:
            first = time.perf_counter() - start
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            timings = job["timings"]
            STACK_OWN.append(((timings["queued_s"] or 0) + (timings["first_token_s"] or 0),
                              start + timings["total_s"]))
            return first or 0.0, time.perf_counter() - start, job["usage"]["completion_tokens"]
        _pause.wait(pace.after(job["status"], job["text"]))


STACK_OWN: list[tuple[float, float]] = []  # (first token s, end on perf_counter)


def _rate(results: list[tuple[float, float, int]], wall: float) -> float:
    return sum(r[2] for r in results) / wall


def _cold_direct(model: Path) -> float:
    """A fresh `llamacpp-server` process to its first streamed token."""
    port, key = free_port(), "bench-key"
    context = llamacpp.serving_context(llamacpp.read_gguf_info(model))
    start = time.perf_counter()
    proc = subprocess.Popen(llamacpp.engine_command(subcommand_base(), str(model), port, context=context),
                            env={**os.environ, llamacpp.API_KEY_ENV: key}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            _pause.wait(0.01)
        healthy = time.perf_counter() - start
        first, _total, _n = _direct(f"http://127.0.0.1:{port}", key)
        print(f"  engine process healthy after {healthy:.2f} s")
        return healthy + first
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="tinyllama-bench-"))
    try:
        t = time.perf_counter()
        model = _model(folder)
        print(f"  model: {model.name}, {model.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - t:.1f} s")
        so = next(Path(p) for p in sys.path if (Path(p) / "xllamacpp").is_dir()) / "xllamacpp"
        print(f"  install size: xllamacpp {sum(f.stat().st_size for f in so.rglob('*') if f.is_file()) / 1e6:.0f} MB")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import xllamacpp"], check=True)
        print(f"  `import xllamacpp` in a fresh interpreter: {time.perf_counter() - t:.2f} s")
        cold_direct = _cold_direct(model)

        with LocalStack(port=0, engine="llamacpp", model=str(model)) as stack:  # the app's own settings
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {stack.token}"
            session.trust_env = False  # as the app's client does for the local stack
            cold_stack, _total, _n = _through(session, stack.url)
            engine_url = f"http://127.0.0.1:{stack._engine_port}"
            key = stack._engine_key_secret
            warm: dict[str, list[float]] = {"direct": [], "stack": []}
            for _ in range(ROUNDS):
                warm["direct"].append(_direct(engine_url, key)[0])
                warm["stack"].append(_through(session, stack.url)[0])
            own_first = [first for first, _end in STACK_OWN[-ROUNDS:]]
            print(f"  first token, cold wake: stack {cold_stack:.2f} s, direct (fresh process) {cold_direct:.2f} s")
            print(f"  first token, warm (median of {ROUNDS}): stack as the app sees it "
                  f"{pct(warm['stack'], 50) * 1000:.0f} ms (the stack's own {pct(own_first, 50) * 1000:.0f} ms), "
                  f"direct {pct(warm['direct'], 50) * 1000:.0f} ms")
            sides = {
                1: {"stack": lambda i: _through(session, stack.url)},
                8: {"stack": lambda i: _through(session, stack.url, on_screen=i == 0),
                    "stack, all on screen": lambda i: _through(session, stack.url)},
            }
            for streams, stack_sides in sides.items():
                calls = {"direct": lambda _i: _direct(engine_url, key), **stack_sides}
                rates: dict[str, list[float]] = {name: [] for name in calls}
                own: dict[str, list[float]] = {name: [] for name in stack_sides}
                for _ in range(ROUNDS):
                    for name, call in calls.items():
                        with ThreadPoolExecutor(streams) as pool:
                            start = time.perf_counter()
                            results = list(pool.map(call, range(streams)))
                            rates[name].append(_rate(results, time.perf_counter() - start))
                        if name in own:  # until the worker finished the last answer
                            own[name].append(_rate(results, max(end for _f, end in STACK_OWN[-streams:]) - start))
                direct_rate = pct(rates["direct"], 50)
                for name in stack_sides:
                    rate, own_rate = pct(rates[name], 50), pct(own[name], 50)
                    print(f"  {streams} stream(s), median of {ROUNDS} rounds: {name} {rate:.1f} tok/s as the app "
                          f"saw the answers end ({own_rate:.1f} until the worker ended them), direct "
                          f"{direct_rate:.1f} tok/s, ratio {rate / direct_rate:.2f} ({own_rate / direct_rate:.2f}) "
                          "(goal >= 0.95)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
