"""The worker: pulls jobs from Redis and runs them concurrently against the engine.

vLLM batches concurrent requests, so the worker keeps up to `max_inflight` jobs running
at once, one thread each (the engine call is blocking I/O). It streams text into the
request hash as it comes, stops generating when a request is cancelled (a watcher thread
aborts the engine's request, so a stalled stream stops too), heartbeats — "ready" only
while the engine answers —, takes over the jobs of workers whose heartbeat expired, and
stops its machine after an idle spell.

Signals: the first SIGTERM/SIGINT is a warm stop (take no new jobs, finish the running
ones — including any a read in flight had already handed to this worker, since leaving
them would strand them until another worker's reclaim); the second is a cold stop (abort
generation now; the jobs go back to the queue and the next worker reclaims them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from backend.adapters.engines import EngineError
from backend.adapters.redis_queue import Delivery, RedisQueue
from backend.core.errors import TinyLlamaError
from backend.core.jobs import JobStatus
from backend.core.policies import should_idle_stop
from backend.core.ports import Engine, StopSignal
from backend.core.prompts import estimate_prompt_tokens

log = logging.getLogger("tinyllama.worker")

METRICS_NAMESPACE = "TinyLlama"


# How often a worker whose engine is not answering asks it again. Fixed and short: the
# engine's readiness is a local HTTP call, and every backoff step here was a step added
# to each wake (a healthy engine was noticed up to 5 s late).
ENGINE_POLL_S = 0.1
# How often running jobs are checked for a cancel. A stalled stream yields no chunk, so
# the per-chunk check alone could leave a cancelled answer generating indefinitely.
CANCEL_POLL_S = 0.2


class Backoff:
    """Capped exponential backoff for Redis outages: 0.1 s, 0.2 s, ... up to `cap`.

    The cap is short (0.5 s) because an outage of the local or ElastiCache Redis is over
    when it restarts, and a worker still asleep in a 5 s step then kept prompts waiting
    that long for nothing; a retry every half second is no load on a recovering server.
    """

    def __init__(self, base: float = 0.1, cap: float = 0.5):
        self.base, self.cap, self.delay = base, cap, 0.0

    def next(self) -> float:
        self.delay = min(self.cap, self.delay * 2 if self.delay else self.base)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class Worker:
    """Runs jobs from `queue` on `engine`. Dependencies come in through the constructor."""

    def __init__(
        self,
        queue: RedisQueue,
        engine: Engine,
        *,
        name: str | None = None,
        max_inflight: int = 32,
        idle_timeout_s: float = 900.0,
        on_idle: Callable[[], str] | None = None,
        claim_idle_s: float = 30.0,
        heartbeat_s: float = 2.0,
        flush_interval_s: float = 0.05,
        gpu_price_per_hour_usd: float = 0.0,
        emit_metrics: bool = False,
    ):
        self.queue = queue
        self.engine = engine
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.max_inflight = max_inflight
        self.idle_timeout_s = idle_timeout_s
        self.on_idle = on_idle
        self.claim_idle_s = claim_idle_s
        self.heartbeat_s = heartbeat_s
        self.flush_interval_s = flush_interval_s
        self.price_per_s = gpu_price_per_hour_usd / 3600.0
        self.emit_metrics = emit_metrics

        self._inflight: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        self._warm_stop = threading.Event()
        self._cold_stop = threading.Event()
        self._wake = threading.Event()  # interrupts waits on stop
        self._slot_freed = threading.Event()  # a job ended (or a stop): the main loop may pull
        self._stopped = threading.Event()  # run() has returned: the cancel watcher ends
        self._pool = ThreadPoolExecutor(max_workers=max_inflight, thread_name_prefix="job")
        self._last_activity = time.monotonic()
        self._ready = False  # the engine answered at the last check
        self._last_chunk = 0.0  # monotonic time of the last streamed chunk, of any job
        self._stops: dict[str, StopSignal] = {}  # entry id -> the stop of its running stream
        self._checked: dict[str, float] = {}  # entry id -> when a flush last read its status
        self._done_tokens = 0
        self._done_latency_ms: list[float] = []
        self.stopped_reason = ""

    # -- signals ------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: warm stop. Second: cold stop."""

        def handle(signum: int, _frame: Any) -> None:
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self) -> None:
        if self._warm_stop.is_set():
            log.warning("second stop signal: aborting %d running job(s)", len(self._inflight))
            self._cold_stop.set()
        else:
            log.info("stop signal: finishing %d running job(s), taking no new ones", len(self._inflight))
            self._warm_stop.set()
        self._wake.set()
        self._slot_freed.set()

    # -- main loop ----------------------------------------------------------------------
    def run(self) -> str:
        """Work until stopped or idle; return why it stopped."""
        backoff = Backoff()
        self._wait_for_engine()
        watcher = threading.Thread(target=self._watch_cancels, name="cancel-watch", daemon=True)
        watcher.start()
        next_tick = 0.0
        while not self._warm_stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + self.heartbeat_s
                    if self._idle_expired():
                        self.stopped_reason = self._go_idle()
                        break
                if self._ready:
                    self._pull()
                else:
                    # The engine stopped answering: take nothing new (the jobs wait in the
                    # queue, not fail), and look again soon rather than at the next beat.
                    self._wake.wait(ENGINE_POLL_S)
                    if self.engine.ready():
                        self._engine_back()
                backoff.reset()
            except redis.RedisError as exc:
                delay = backoff.next()
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                self._wake.wait(delay)
        self._drain()
        self._stopped.set()
        watcher.join(CANCEL_POLL_S * 5)
        return self.stopped_reason or ("cold stop" if self._cold_stop.is_set() else "warm stop")

    def _wait_for_engine(self) -> None:
        next_beat = 0.0
        while not self._warm_stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.heartbeat_s
                try:
                    self.queue.heartbeat(self.name, self._beat(ready=False), ttl_s=self.heartbeat_s * 3)
                except redis.RedisError as exc:
                    log.warning("Redis unavailable while starting (%s)", exc)
            if self.engine.ready():
                break
            self._wake.wait(ENGINE_POLL_S)
        self._ready = True
        try:
            # Say "ready" at once: /status (and the wake's measured phases) should not
            # wait for the first beat of the main loop.
            self.queue.heartbeat(self.name, self._beat(ready=True), ttl_s=self.heartbeat_s * 3)
            self.queue.ensure_group()
            phases = self.queue.wake_ready()
            if phases:
                log.info("wake complete in %.1f s: %s", phases["ready"] - phases["requested"], phases)
        except redis.RedisError as exc:
            log.warning("Redis unavailable after engine start (%s)", exc)
        self._last_activity = time.monotonic()

    def _pull(self) -> None:
        free = self._free_slots()
        if free == 0:
            # Every slot streams: sleep until one ends, not in short polls (on a CPU engine
            # each wake-up of this process takes time from the engine's threads).
            self._slot_freed.clear()
            if self._free_slots() == 0:
                self._slot_freed.wait(self.heartbeat_s)
            return
        for delivery in self.queue.read(self.name, count=free, block_ms=int(self.heartbeat_s * 500)):
            self._submit(delivery)

    def _free_slots(self) -> int:
        with self._lock:
            return self.max_inflight - len(self._inflight)

    def _submit(self, delivery: Delivery) -> None:
        with self._lock:
            self._inflight[delivery.entry_id] = delivery
        self._last_activity = time.monotonic()
        self._pool.submit(self._run_job, delivery)

    def _engine_back(self) -> None:
        log.info("the engine answers again")
        self._ready = True
        self.queue.heartbeat(self.name, self._beat(ready=True), ttl_s=self.heartbeat_s * 3)

    def _tick(self) -> None:
        """Heartbeat (ready only while the engine answers), keep our own jobs from looking
        abandoned, reclaim the jobs of workers that are gone."""
        # Chunks streamed since the last beat say the engine answers: no need to ask it.
        streaming = time.monotonic() - self._last_chunk < self.heartbeat_s
        was_ready, self._ready = self._ready, streaming or self.engine.ready()
        if was_ready and not self._ready:
            log.warning("the engine stopped answering; taking no new jobs until it is back")
        self.queue.heartbeat(self.name, self._beat(ready=self._ready), ttl_s=self.heartbeat_s * 3)
        with self._lock:
            mine = list(self._inflight)
        self.queue.touch(self.name, mine)
        free = self._free_slots() if self._ready else 0
        if free:
            # A worker whose heartbeat expired is gone: its jobs are taken at once. The
            # idle-time claim stays as the backstop (a consumer with no beat at all).
            taken = self.queue.claim_orphans(self.name, count=free)
            if len(taken) < free:
                taken += self.queue.claim_stale(self.name, int(self.claim_idle_s * 1000), count=free - len(taken))
            for delivery in taken:
                log.info("reclaimed %s (delivery %d)", delivery.request_id, delivery.deliveries)
                self._submit(delivery)
        if self.emit_metrics:
            self._emit_metrics()

    def _beat(self, ready: bool) -> dict[str, Any]:
        return {
            "worker": self.name,
            "engine": self.engine.name,
            "model": getattr(self.engine, "model", None),
            "context_tokens": getattr(self.engine, "context_tokens", None),
            "ready": ready,
            "inflight": len(self._inflight),
            "pid": os.getpid(),
            # When this worker stops its machine if nothing comes (/status says it): its
            # last activity on the wall clock, and its idle timeout (0: it never idles out).
            "idle_since": round(time.time() - (time.monotonic() - self._last_activity), 1),
            "idle_timeout_s": self.idle_timeout_s,
        }

    def _idle_expired(self) -> bool:
        if self.idle_timeout_s <= 0:
            return False
        with self._lock:
            inflight = len(self._inflight)
        if inflight:
            return False
        idle_for = time.monotonic() - self._last_activity
        if idle_for < self.idle_timeout_s:
            return False
        return should_idle_stop(idle_for, self.queue.depth(), inflight, self.idle_timeout_s)

    def _go_idle(self) -> str:
        log.info("idle for %.0f s with an empty queue", self.idle_timeout_s)
        result = self.on_idle() if self.on_idle else "idle"
        log.info("idle stop: %s", result)
        return f"idle: {result}"

    def _watch_cancels(self) -> None:
        """Stop the streams of cancelled jobs now, not at their next chunk.

        One pipelined read of the running jobs' statuses every CANCEL_POLL_S; a job no
        longer `running` (cancelled, or failed by someone else) has its stop signalled,
        which makes the engine abort its HTTP request even when the stream is stalled.
        A job whose last flush read its status within CANCEL_POLL_S is left out: its
        tokens flow, and each flush answers with the status (8 answers at once: the
        watcher's reads were an eighth of the worker's CPU). A cold stop signals every
        running job.
        """
        while not self._stopped.wait(CANCEL_POLL_S):
            quiet_since = time.monotonic() - CANCEL_POLL_S
            with self._lock:
                running = [(self._inflight[e].request_id, stop) for e, stop in self._stops.items()
                           if e in self._inflight and (self._cold_stop.is_set()
                                                       or self._checked.get(e, 0.0) < quiet_since)]
            if not running:
                continue
            if self._cold_stop.is_set():
                for _rid, stop in running:
                    stop.set()
                continue
            try:
                statuses = self.queue.statuses([rid for rid, _stop in running])
            except redis.RedisError:
                continue  # the main loop reports the outage; chunks still check on flush
            for (rid, stop), current in zip(running, statuses, strict=True):
                if current not in (None, JobStatus.RUNNING.value):
                    log.info("stopping %s: it is %s", rid, current)
                    stop.set()

    def _drain(self) -> None:
        """Warm: wait for running jobs. Cold: they see the stop flag and go back to the queue.

        While a warm stop waits, the worker keeps touching its jobs and heartbeating (as not
        ready: it takes nothing new). Without that, an answer longer than `claim_idle_s`
        looked abandoned, and another worker reclaimed it and started it over mid-stream.
        """
        while not self._cold_stop.is_set():
            with self._lock:
                mine = list(self._inflight)
            if not mine:
                break
            try:
                self.queue.heartbeat(self.name, {**self._beat(ready=False), "draining": True},
                                     ttl_s=self.heartbeat_s * 3)
                self.queue.touch(self.name, mine)
            except redis.RedisError as exc:
                log.warning("Redis unavailable while draining (%s)", exc)
            self._cold_stop.wait(self.heartbeat_s)
        self._pool.shutdown(wait=True)
        with contextlib.suppress(redis.RedisError):
            self.queue.clear_heartbeat(self.name)

    # -- one job --------------------------------------------------------------------------
    def _run_job(self, delivery: Delivery) -> None:
        try:
            self._run_job_inner(delivery)
        except Exception:  # a job must never take the worker down
            log.exception("job %s crashed", delivery.request_id)
            self._retry_redis(
                lambda: self.queue.finish(
                    delivery,
                    JobStatus.FAILED,
                    error={"code": "internal", "message": "The worker hit an unexpected error."},
                )
            )
        finally:
            with self._lock:
                self._inflight.pop(delivery.entry_id, None)
            self._last_activity = time.monotonic()
            self._slot_freed.set()

    def _run_job_inner(self, delivery: Delivery) -> None:
        job = self._retry_redis(lambda: self.queue.start(delivery, self.name))
        if job is None:
            self._retry_redis(lambda: self.queue.ack(delivery.entry_id))
            return
        messages = json.loads(job["messages"])
        params = json.loads(job["params"])
        started = float(job["started"])
        created = float(job["created"])
        sharing_at_start = self._inflight_count()
        parts: list[str] = []
        first_token: float | None = None
        last_flush = 0.0
        stop = StopSignal()
        if self._cold_stop.is_set():
            stop.set()
        with self._lock:
            self._stops[delivery.entry_id] = stop
        final = None
        try:
            for chunk in self.engine.stream(messages, params, stop):
                self._last_chunk = time.monotonic()
                if chunk.text:
                    parts.append(chunk.text)
                    first_token = first_token or time.time()
                if chunk.finish_reason:
                    final = chunk
                now = time.monotonic()
                if chunk.text and now - last_flush >= self.flush_interval_s:
                    last_flush = now
                    if self._flush(delivery, "".join(parts), first_token) not in (None, "running"):
                        stop.set()
            if final is None and not stop():
                raise EngineError(
                    "The engine's stream ended early, before the answer was finished "
                    "(the model server may have restarted). Try again."
                )
        except TinyLlamaError as exc:
            error = exc.to_body()["error"]
            self._retry_redis(
                lambda: self.queue.finish(delivery, JobStatus.FAILED, text="".join(parts), error=error)
            )
            return
        finally:
            with self._lock:
                self._stops.pop(delivery.entry_id, None)
                self._checked.pop(delivery.entry_id, None)
        if (self._cold_stop.is_set() and (final is None or final.finish_reason == "cancelled")
                and self._retry_redis(lambda: self.queue.status(delivery.request_id)) == JobStatus.RUNNING):
            # Stopped by the cold stop, not by its owner: the next worker answers it again.
            self._retry_redis(lambda: self.queue.requeue(delivery))
            return
        finished = time.time()
        # A cancelled answer is still paid for: the tokens generated until the stop count,
        # one per streamed chunk where the engine did not say (vLLM streams one per chunk).
        usage = {
            # A server that sends no usage still gets a count: the router's (low) estimate.
            "prompt_tokens": (final.prompt_tokens if final and final.prompt_tokens is not None
                              else estimate_prompt_tokens(messages)),
            "completion_tokens": (final.completion_tokens if final and final.completion_tokens is not None
                                  else len(parts)),
        }
        fields: dict[str, Any] = {
            "text": "".join(parts),
            "usage": usage,
            "finished": repr(finished),
            "cost_usd": repr(round(self._gpu_cost(finished - started, sharing_at_start), 6)),
            "finish_reason": final.finish_reason if final else "cancelled",  # no final: it was stopped
        }
        if first_token:
            fields["first_token"] = repr(first_token)
        if job.get("woke"):
            fields["wake_s"] = repr(round(started - created, 3))
        self._retry_redis(lambda: self.queue.finish(delivery, JobStatus.DONE, **fields))
        with self._lock:
            self._done_tokens += usage["completion_tokens"] or 0
            self._done_latency_ms.append((finished - created) * 1000)

    def _inflight_count(self) -> int:
        with self._lock:
            return len(self._inflight)

    def _gpu_cost(self, seconds: float, sharing_at_start: int) -> float:
        """This answer's share of the GPU: its time divided by how many answers shared the
        GPU meanwhile (vLLM batches them), estimated from the count at its start and end."""
        sharing = (max(1, sharing_at_start) + max(1, self._inflight_count())) / 2
        return seconds * self.price_per_s / sharing

    def _flush(self, delivery: Delivery, text: str, first_token: float | None) -> str | None:
        try:
            status = self.queue.write_text(delivery.request_id, text, first_token)
            self._checked[delivery.entry_id] = time.monotonic()  # the watcher can skip it a while
            return status
        except redis.RedisError:
            return "running"  # keep generating; the next flush or the finish writes it

    def _retry_redis(self, op: Callable[[], Any], deadline_s: float = 120.0) -> Any:
        """Bookkeeping that must land: retry through a Redis outage, with capped backoff."""
        backoff = Backoff()
        end = time.monotonic() + deadline_s
        while True:
            try:
                return op()
            except redis.RedisError as exc:
                if time.monotonic() > end or self._cold_stop.is_set():
                    log.error("giving up a Redis write after %.0f s: %s", deadline_s, exc)
                    return None
                time.sleep(backoff.next())

    def _emit_metrics(self) -> None:
        # Powertools' EMF writer, imported only where metrics are on (the GPU instance);
        # EphemeralMetrics keeps no state shared across instances, and flushing by hand is
        # its way outside a Lambda handler.
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        with self._lock:
            latencies, self._done_latency_ms = self._done_latency_ms, []
            tokens, self._done_tokens = self._done_tokens, 0
        emf = EphemeralMetrics(namespace=METRICS_NAMESPACE)
        emf.add_dimension(name="Worker", value="gpu")
        depth, inflight = self.queue.depth(), len(self._inflight)
        emf.add_metric(name="QueueDepth", unit=MetricUnit.Count, value=depth)
        emf.add_metric(name="Inflight", unit=MetricUnit.Count, value=inflight)
        # What the 30-minute safety stop reads (infra/stack.yaml IdleStopAlarm): 1 while
        # anyone is served or waits. One number, so the alarm needs no sum of two series.
        emf.add_metric(name="Busy", unit=MetricUnit.Count, value=1 if depth or inflight else 0)
        emf.add_metric(name="TokensPerSecond", unit=MetricUnit.CountPerSecond, value=tokens / self.heartbeat_s)
        if latencies:
            emf.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=sum(latencies) / len(latencies))
        emf.flush_metrics(raise_on_empty_metrics=True)  # one EMF line on stdout


def gpu_price_from_env(identity: Callable[[], Any] | None = None) -> float:
    """The hourly price the worker charges answers at: the type this instance really runs as.

    The template passes GPU_PRICE_PER_HOUR_USD for the *requested* InstanceType, but the
    router starts FALLBACK_INSTANCE_TYPE (g4dn → g5) when EC2 has no capacity, and the same
    instance then keeps the fallback type. So on a priced GPU the worker asks IMDS what it
    runs as and prices that from backend/core/pricing.PRICES (dated, the same list prices
    as the template's GpuPrice map); the template's figure stays the fallback when IMDS does
    not answer or the type is not in the table. Without GPU_PRICE_PER_HOUR_USD (the local
    profile) nothing is priced and IMDS is not asked, so no start-up waits on its timeout.
    """
    fixed = os.environ.get("GPU_PRICE_PER_HOUR_USD", "")
    if not fixed:
        return 0.0
    from backend.adapters.imds import instance_identity
    from backend.core.pricing import instance_hourly_usd

    ident = (identity or instance_identity)()
    running = getattr(ident, "instance_type", None)
    price = instance_hourly_usd(running)
    if price is None:
        log.info("pricing answers at GPU_PRICE_PER_HOUR_USD=%s (instance type %s not in the table)", fixed, running)
        return float(fixed)
    if abs(price - float(fixed)) > 1e-9:
        log.info("running as %s: answers priced at $%s/h, not the requested type's $%s/h", running, price, fixed)
    return price


def worker_from_env(argv_engine: Engine | None = None) -> Worker:
    """The worker `tinyllama worker` runs, configured by environment variables."""
    from backend.entrypoints import settings

    queue = settings.queue_from_env()
    engine = argv_engine or settings.engine_from_env()
    return Worker(
        queue,
        engine,
        name=os.environ.get("WORKER_NAME") or None,
        max_inflight=int(os.environ.get("MAX_INFLIGHT", "32")),
        idle_timeout_s=float(os.environ.get("IDLE_TIMEOUT_S", "900")),
        on_idle=settings.idle_action_from_env(queue),
        claim_idle_s=float(os.environ.get("CLAIM_IDLE_S", "30")),
        heartbeat_s=float(os.environ.get("HEARTBEAT_S", "2")),
        gpu_price_per_hour_usd=gpu_price_from_env(),
        emit_metrics=os.environ.get("EMIT_METRICS", "0") == "1",
    )


def main_from_env(argv_engine: Engine | None = None) -> int:
    """`tinyllama worker`: configured by environment variables, as on the GPU instance."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    worker = worker_from_env(argv_engine)
    worker.install_signal_handlers()
    reason = worker.run()
    log.info("worker stopped: %s", reason)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`tinyllama-worker` (the GPU instance's package): `--help` explains, anything else runs."""
    import argparse

    from backend.entrypoints import settings

    argparse.ArgumentParser(
        prog="tinyllama-worker", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the TinyLlama worker: pull prompts from Redis and answer them with the engine.",
        epilog="Configured by environment variables, as the GPU instance's worker.env sets them:\n"
        + (settings.__doc__ or "").split("\n\n")[1]).parse_args(argv)
    return main_from_env()
