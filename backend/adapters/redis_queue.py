"""The job queue in Redis: a Stream with a consumer group, and one hash per request.

Keys (all under one prefix, default `tl`):

- `tl:jobs`            Stream of `{id}` entries; consumer group `workers`.
- `tl:req:{id}`        Hash: owner, status, messages, params, text, timings, usage, error,
                       attempt (set when a reclaimed job starts over).
                       Expires `result_ttl_s` after the request ends.
- `tl:gone:{id}`       The owner of a request whose result has expired, so that its owner
                       gets `expired` rather than a bare 404.
- `tl:idem:{owner}:{key}` Idempotency key → request id (`SET NX EX`).
- `tl:hb:{worker}`     Worker heartbeat (JSON), with a TTL; `tl:hb` is the set of names.
- `tl:wake`            Hash of the wake in progress: requested, running, ready (unix time).
- `tl:wakes`           List of past wakes (JSON of their phases), newest first.
- `tl:wakes:engine`    The engine those wakes were measured with (a change of engine forgets them).

Status changes go through one Lua script so that the router's cancel and the worker's
progress never overwrite each other: a change happens only from the states that
`backend.core.jobs.ALLOWED` lists.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from backend.core.errors import NotFound, Unavailable
from backend.core.jobs import ALLOWED, TERMINAL, JobStatus
from backend.core.prompts import PromptRequest

GROUP = "workers"
WAKE_HISTORY = 20
WAKE_RECORD_TTL_S = 600

# Set status (and fields) only when the current status is one of ARGV[2] (a comma list).
# Returns "OK", the current status when refused, or false when the hash is gone.
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
if not string.find(',' .. ARGV[2] .. ',', ',' .. cur .. ',', 1, true) then return cur end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('SET', KEYS[2], redis.call('HGET', KEYS[1], 'owner'), 'EX', 86400)
end
return 'OK'
"""

# Enqueue in one step: claim the idempotency key (KEYS[3], when given), write the request
# hash and add the stream entry. Split into separate calls, a retry racing the first POST
# got an id whose hash did not exist yet (a 404 for a POST), and a write failing after the
# claim left the key pointing at a request that never existed. Returns the id that holds
# the key: ARGV[1] when this call created it, the first request's otherwise.
_SUBMIT = """
if #KEYS == 3 then
  local existing = redis.call('GET', KEYS[3])
  if existing then return existing end
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
return ARGV[1]
"""

# Write streamed text only while the job is running; answer the status either way, so
# the worker learns of a cancel on its next write without a separate round trip.
_WRITE_TEXT = """
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == 'running' then
  redis.call('HSET', KEYS[1], 'text', ARGV[1])
  if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], 'first_token', ARGV[2]) end
end
return cur
"""


@dataclass(frozen=True)
class Delivery:
    """One stream entry handed to a worker."""

    entry_id: str
    request_id: str
    deliveries: int = 1


def _allowed_from(new: JobStatus) -> str:
    return ",".join(s.value for s, targets in ALLOWED.items() if new in targets)


def _decode(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class RedisQueue:
    """Router and worker view of the queue. Thread-safe (redis-py pools connections)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "tl",
        result_ttl_s: int = 300,
        active_ttl_s: int = 86_400,
        idempotency_ttl_s: int = 86_400,
        max_deliveries: int = 3,
    ):
        self.r = client
        self.prefix = prefix
        self.result_ttl_s = result_ttl_s
        self.active_ttl_s = active_ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.max_deliveries = max_deliveries
        self.stream = f"{prefix}:jobs"
        self._submit = client.register_script(_SUBMIT)
        self._transition = client.register_script(_TRANSITION)
        self._write_text = client.register_script(_WRITE_TEXT)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisQueue:
        """Connect lazily; `rediss://` gives TLS, as ElastiCache in-transit encryption needs."""
        options: dict[str, Any] = {}
        if url.startswith("rediss://"):
            # redis-py before 6.0 verified the chain but not the name (pyproject allows
            # 5.x): without this, any certificate from a public CA would do.
            options["ssl_check_hostname"] = True
        if url.startswith("rediss://") and os.environ.get("REDIS_CA_CERTS"):
            # ElastiCache's certificates chain to public CAs; a private CA bundle is for
            # self-hosted Redis (and the TLS test).
            options["ssl_ca_certs"] = os.environ["REDIS_CA_CERTS"]
        # redis-py 6 and later retry a failed command many times (8.x: 10 times, backing off up
        # to 1 s each, ~5 s in all). A request that came while Redis restarted then answered
        # seconds after it was back, and the 503 that says so came as late. Three quick tries
        # ride out a blip; the worker has its own backoff for longer outages.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30, retry=retry, **options
        )
        return cls(client, **kwargs)

    # -- keys -------------------------------------------------------------------------
    def _req(self, request_id: str) -> str:
        return f"{self.prefix}:req:{request_id}"

    def _hb(self, worker: str) -> str:
        return f"{self.prefix}:hb:{worker}"

    def _gone(self, request_id: str) -> str:
        return f"{self.prefix}:gone:{request_id}"

    # -- router side -----------------------------------------------------------------
    def submit(self, owner: str, prompt: PromptRequest, status: JobStatus = JobStatus.QUEUED) -> tuple[str, bool]:
        """Enqueue a prompt; return (request_id, created). A known idempotency key returns
        the first request's id and enqueues nothing."""
        request_id = uuid.uuid4().hex
        keys = [self._req(request_id), self.stream]
        if prompt.idempotency_key:
            keys.append(f"{self.prefix}:idem:{owner}:{prompt.idempotency_key}")
        now = time.time()
        fields = {
            "owner": owner,
            "status": status.value,
            "messages": json.dumps(prompt.messages),
            "params": json.dumps(prompt.params()),
            "text": "",
            "created": repr(now),
        }
        if status == JobStatus.WAKING:
            fields["woke"] = "1"
        args: list[Any] = [request_id, self.idempotency_ttl_s, self.active_ttl_s]
        for k, v in fields.items():
            args += [k, v]
        holder = _decode(self._submit(keys=keys, args=args))
        return holder, holder == request_id

    def get(self, owner: str, request_id: str) -> dict[str, Any]:
        """The request as its owner sees it; NotFound for anyone else or an unknown id."""
        raw = self.r.hgetall(self._req(request_id))
        if not raw:
            if _decode(self.r.get(self._gone(request_id))) == owner:
                return {"request_id": request_id, "status": JobStatus.EXPIRED.value, "text": ""}
            raise NotFound("No prompt with that id (it may have expired).")
        job = {_decode(k): _decode(v) for k, v in raw.items()}
        if job.get("owner") != owner:
            raise NotFound("No prompt with that id (it may have expired).")
        return _present(request_id, job)

    def cancel(self, owner: str, request_id: str) -> dict[str, Any]:
        """Cancel a request of `owner`; a finished one is returned unchanged."""
        self.get(owner, request_id)
        self.transition(request_id, JobStatus.CANCELLED, finished=repr(time.time()))
        return self.get(owner, request_id)

    def depth(self) -> int:
        """Jobs not yet finished: waiting for a worker, or handed out and not acknowledged."""
        try:
            groups = self.r.xinfo_groups(self.stream)
        except redis.ResponseError:  # no stream yet
            return 0
        for g in groups:
            if _decode(g["name"]) == GROUP:
                return int(g.get("lag") or 0) + int(g.get("pending") or 0)
        return int(self.r.xlen(self.stream))

    # -- state machine ---------------------------------------------------------------
    def transition(self, request_id: str, new: JobStatus, **fields: Any) -> str | None:
        """Move a request to `new` if allowed. Returns "OK", the blocking status, or None
        when the request no longer exists. Terminal states start the result's TTL."""
        ttl = self.result_ttl_s if new in TERMINAL else 0
        args: list[Any] = [new.value, _allowed_from(new), ttl]
        for k, v in fields.items():
            args += [k, v if isinstance(v, str) else json.dumps(v)]
        result = self._transition(keys=[self._req(request_id), self._gone(request_id)], args=args)
        return _decode(result) if result else None

    # -- worker side -----------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the stream and consumer group if missing (also after a Redis restart)."""
        try:
            self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """New entries for this consumer, waiting up to `block_ms` for one."""
        try:
            reply: Any = self.r.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        return [
            Delivery(_decode(entry_id), _decode(fields[b"id"]))
            for _stream, entries in reply or []
            for entry_id, fields in entries
        ]

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 16) -> list[Delivery]:
        """Take over entries a dead worker left pending for more than `min_idle_ms`."""
        try:
            _next, claimed, _deleted = self.r.xautoclaim(
                self.stream, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        out = []
        for entry_id, fields in claimed:
            info = self.r.xpending_range(self.stream, GROUP, min=entry_id, max=entry_id, count=1)
            deliveries = int(info[0]["times_delivered"]) if info else 1
            out.append(Delivery(_decode(entry_id), _decode(fields[b"id"]), deliveries))
        return out

    def claim_orphans(self, consumer: str, count: int = 16, guard_ms: int = 1000) -> list[Delivery]:
        """Take over the pending entries of consumers whose heartbeat has expired.

        A worker that died stops beating, and its beat expires within a few heartbeats,
        far sooner than `claim_stale`'s fixed silence; this claims those jobs at once.
        `guard_ms` is the XCLAIM min-idle: once one worker has claimed an entry its idle
        time is 0, so a second worker racing on the same orphan gets nothing. (A dead
        worker's entries are older than that: it touched them with each beat.) Consumers
        with nothing pending and no beat are removed from the group, so the list of
        consumers does not grow with every worker process ever started.
        """
        try:
            consumers = self.r.xinfo_consumers(self.stream, GROUP)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                raise
            self.ensure_group()
            return []
        others = [_decode(c["name"]) for c in consumers if _decode(c["name"]) != consumer]
        if not others:
            return []
        beats = self.r.mget([self._hb(n) for n in others])
        pending = {_decode(c["name"]): int(c["pending"]) for c in consumers}
        out: list[Delivery] = []
        for name, beat in zip(others, beats, strict=True):
            if beat is not None:
                continue
            if pending[name] == 0:
                self.r.xgroup_delconsumer(self.stream, GROUP, name)
                continue
            if len(out) >= count:
                continue
            entries = self.r.xpending_range(self.stream, GROUP, min="-", max="+", count=count - len(out),
                                            consumername=name)
            for entry in entries:
                claimed: Any = self.r.xclaim(self.stream, GROUP, consumer, min_idle_time=guard_ms,
                                             message_ids=[entry["message_id"]])
                for entry_id, fields in claimed:
                    if fields:  # an entry deleted meanwhile comes back without fields
                        out.append(Delivery(_decode(entry_id), _decode(fields[b"id"]),
                                            int(entry["times_delivered"]) + 1))
        return out

    def touch(self, consumer: str, entry_ids: list[str]) -> None:
        """Reset the idle time of entries this worker is still working on, so that a
        long answer is not mistaken for a dead worker's."""
        if entry_ids:
            ids: list[Any] = list(entry_ids)
            self.r.xclaim(self.stream, GROUP, consumer, min_idle_time=0, message_ids=ids, justid=True)

    def ack(self, entry_id: str) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.execute()

    def start(self, delivery: Delivery, worker: str) -> dict[str, Any] | None:
        """Mark a delivered job running and return it, or None when it should not run
        (cancelled while queued, expired, or delivered too often)."""
        key = self._req(delivery.request_id)
        if delivery.deliveries > 1:
            if delivery.deliveries > self.max_deliveries:
                self.transition(
                    delivery.request_id,
                    JobStatus.FAILED,
                    finished=repr(time.time()),
                    error={
                        "code": "worker_lost",
                        "message": f"The worker stopped {delivery.deliveries - 1} times while "
                        "answering this prompt, so it was given up. Try again.",
                    },
                )
                return None
            # Reclaimed from a dead worker: start the answer over, and say so (`attempt`),
            # so that the app shows "retrying" rather than the first try's frozen text.
            self.transition(delivery.request_id, JobStatus.QUEUED, text="", attempt=str(delivery.deliveries))
            self.r.hdel(key, "first_token")
        result = self.transition(
            delivery.request_id, JobStatus.RUNNING, started=repr(time.time()), worker=worker
        )
        if result != "OK":
            return None
        raw = self.r.hgetall(key)
        return {_decode(k): _decode(v) for k, v in raw.items()}

    def status(self, request_id: str) -> str | None:
        """The request's status, or None when its hash is gone."""
        return _decode(self.r.hget(self._req(request_id), "status"))

    def statuses(self, request_ids: list[str]) -> list[str | None]:
        """The statuses of several requests in one round trip (the worker's cancel watch)."""
        with self.r.pipeline(transaction=False) as pipe:
            for rid in request_ids:
                pipe.hget(self._req(rid), "status")
            return [_decode(v) for v in pipe.execute()]

    def write_text(self, request_id: str, text: str, first_token: float | None) -> str | None:
        """Store the text so far; return the job's status (not 'running' means stop)."""
        result = self._write_text(
            keys=[self._req(request_id)], args=[text, repr(first_token) if first_token else ""]
        )
        return _decode(result) if result else None

    def finish(self, delivery: Delivery, status: JobStatus, **fields: Any) -> str | None:
        """End a job (done/failed) and acknowledge its entry. A job cancelled meanwhile
        keeps its cancelled status but gets the final text and usage."""
        fields.setdefault("finished", repr(time.time()))
        result = self.transition(delivery.request_id, status, **fields)
        if result == JobStatus.CANCELLED.value:
            self.r.hset(
                self._req(delivery.request_id),
                mapping={k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items() if k != "error"},
            )
        self.ack(delivery.entry_id)
        return result

    def fail_waiting(self, error: dict[str, str]) -> int:
        """Fail every job still in the stream (waiting or running) with `error`, and drop
        their entries; the local stack's answer to an engine that cannot start. Returns how
        many requests were failed."""
        failed = 0
        entries: Any = self.r.xrange(self.stream)
        for entry_id, fields in entries:
            rid = _decode(fields[b"id"])
            if self.transition(rid, JobStatus.FAILED, finished=repr(time.time()), error=error) == "OK":
                failed += 1
            self.ack(_decode(entry_id))
        return failed

    def requeue(self, delivery: Delivery) -> None:
        """Put a running job back to queued (cold stop); its entry stays pending so the
        next worker reclaims it."""
        self.transition(delivery.request_id, JobStatus.QUEUED, text="")

    # -- heartbeats and wakes -------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict[str, Any], ttl_s: float) -> None:
        """A beat that expires by itself; the `tl:hb` set names the workers, so reading
        them is two commands, not a SCAN of the keyspace on every poll."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.set(self._hb(worker), json.dumps({**info, "ts": time.time()}), px=int(ttl_s * 1000))
            pipe.sadd(f"{self.prefix}:hb", worker)
            pipe.execute()

    def beat(self, worker: str) -> dict[str, Any] | None:
        """`worker`'s live heartbeat, or None once it has expired."""
        raw = self.r.get(self._hb(worker))
        return json.loads(raw) if raw else None

    def clear_heartbeat(self, worker: str) -> None:
        with self.r.pipeline(transaction=False) as pipe:
            pipe.delete(self._hb(worker))
            pipe.srem(f"{self.prefix}:hb", worker)
            pipe.execute()

    def workers(self) -> list[dict[str, Any]]:
        """Heartbeats of live workers, freshest first (names whose beat expired are dropped)."""
        names = [_decode(n) for n in self.r.smembers(f"{self.prefix}:hb")]
        if not names:
            return []
        values = self.r.mget([self._hb(n) for n in names])
        gone = [n for n, v in zip(names, values, strict=True) if v is None]
        if gone:
            self.r.srem(f"{self.prefix}:hb", *gone)
        beats = [json.loads(v) for v in values if v]
        return sorted(beats, key=lambda b: b.get("ts", 0), reverse=True)

    def wake_started(self) -> bool:
        """Record that a wake was requested now; False when one is already under way."""
        key = f"{self.prefix}:wake"
        if self.r.hsetnx(key, "requested", repr(time.time())):
            # A wake that has not finished in 10 minutes failed (the worker never came
            # up); let the record go so the next wake's ETA is not measured from it.
            self.r.expire(key, WAKE_RECORD_TTL_S)
            return True
        return False

    def wake_phase(self, phase: str) -> None:
        """Record when the wake in progress reached `phase` (first time only)."""
        key = f"{self.prefix}:wake"
        if self.r.exists(key):
            self.r.hsetnx(key, phase, repr(time.time()))

    def wake_current(self) -> dict[str, float]:
        raw = self.r.hgetall(f"{self.prefix}:wake")
        return {_decode(k): float(v) for k, v in raw.items()}

    def wake_ready(self) -> dict[str, float] | None:
        """Close the wake in progress (the worker is ready); keep its phases in history."""
        key = f"{self.prefix}:wake"
        self.wake_phase("ready")
        phases = self.wake_current()
        if "requested" not in phases:
            return None
        with self.r.pipeline(transaction=True) as pipe:
            pipe.lpush(f"{self.prefix}:wakes", json.dumps(phases))
            pipe.ltrim(f"{self.prefix}:wakes", 0, WAKE_HISTORY - 1)
            pipe.delete(key)
            pipe.execute()
        return phases

    def wake_history(self) -> list[dict[str, float]]:
        return [json.loads(v) for v in self.r.lrange(f"{self.prefix}:wakes", 0, WAKE_HISTORY - 1)]

    def keep_wakes_of(self, engine: str) -> None:
        """Forget wakes measured with another engine: a local Redis that keeps its data
        outlives a change of engine, and an echo worker's 0.3 s says nothing of vLLM's 40 s."""
        key = f"{self.prefix}:wakes"
        if _decode(self.r.set(f"{key}:engine", engine, get=True)) not in (None, engine):
            self.r.delete(key)

    def restore_wakes(self, wakes: list[dict[str, float]]) -> None:
        """Seed an empty history with wakes an earlier run measured (newest first)."""
        key = f"{self.prefix}:wakes"
        if wakes and not self.r.llen(key):
            self.r.rpush(key, *[json.dumps(w) for w in wakes[:WAKE_HISTORY]])

    def ping(self) -> None:
        """Raise Unavailable with a clear message when Redis does not answer."""
        try:
            self.r.ping()
        except redis.RedisError as exc:
            raise Unavailable(
                "The queue is not answering (it may be restarting). Try again in a few seconds."
            ) from exc


def _num(job: dict[str, Any], key: str) -> float | None:
    value = job.get(key)
    return float(value) if value not in (None, "") else None


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


def _present(request_id: str, job: dict[str, Any]) -> dict[str, Any]:
    """The contract's view of a request hash."""
    created, started = _num(job, "created"), _num(job, "started")
    first, finished = _num(job, "first_token"), _num(job, "finished")
    params = json.loads(job.get("params") or "{}")
    attempt = int(job.get("attempt") or 1)
    return {
        "request_id": request_id,
        "status": job.get("status"),
        "text": job.get("text", ""),
        "model": job.get("model") or params.get("model"),
        "usage": json.loads(job["usage"]) if job.get("usage") else None,
        "timings": {
            "queued_s": _span(created, started),
            "wake_s": _num(job, "wake_s"),
            "first_token_s": _span(started, first),
            "total_s": _span(created, finished),
        },
        "cost_usd": _num(job, "cost_usd"),
        "error": json.loads(job["error"]) if job.get("error") else None,
        "attempt": attempt,
        "retrying": attempt > 1 and not JobStatus(job.get("status") or "queued").terminal,
    }
