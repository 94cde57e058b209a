"""The job queue in Redis: a Stream with a consumer group, and one hash per request.

Keys (all under one hash tag, default `{tl}`, so that every key of the queue lives in one
hash slot; `RedisQueue.key` is the one place that spells them):

- `{tl}:jobs`            Stream of `{id}` entries; consumer group `workers`.
- `{tl}:req:{id}`        Hash: owner, status, messages, params, text, timings, usage, error,
                         attempt (set when a reclaimed job starts over).
                         Expires `result_ttl_s` after the request ends.
- `{tl}:gone:{id}`       The owner of a request whose result has expired, so that its owner
                         gets `expired` rather than a bare 404.
- `{tl}:idem:{owner}:{key}` Idempotency key → request id (`SET NX EX`).
- `{tl}:hb:{worker}`     Worker heartbeat (JSON), with a TTL; `{tl}:hb` is the set of names.
- `{tl}:wake`            Hash of the wake in progress: requested, running, ready (unix time).
- `{tl}:wakes`           List of past wakes (JSON of their phases), newest first.
- `{tl}:wakes:engine`    The engine those wakes were measured with (a change of engine forgets them).
- `{tl}:spend:{budget}`  The budget guard's cached month-to-date spend (`adapters.spend`).

Why one hash tag: ElastiCache Serverless (Valkey or Redis OSS) is cluster mode only, and in
cluster mode a Lua script, MULTI or multi-key command (MGET) whose keys hash to different
slots fails with CROSSSLOT. Only the part between the braces is hashed, so every key here
is in the slot of `tl`. One slot means one shard: the queue's load is one small stream,
far below what one shard serves, so nothing is lost by it. Every key a Lua script touches
is passed in KEYS, never built inside the script (cluster mode routes a script by its
KEYS and Serverless refuses undeclared ones).

Status changes go through one Lua script so that the router's cancel and the worker's
progress never overwrite each other: a change happens only from the states that
`backend.core.jobs.ALLOWED` lists.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

from backend.core.errors import NotFound, Unavailable
from backend.core.jobs import ALLOWED, TERMINAL, JobStatus
from backend.core.prompts import PromptRequest

log = logging.getLogger(__name__)

GROUP = "workers"
WAKE_HISTORY = 20
WAKE_RECORD_TTL_S = 600



class _Cluster(RedisCluster):
    """redis-py's cluster client, whose "cannot reach the cluster" errors are RedisErrors.

    redis-py raises RedisClusterException, which is not a RedisError, when no node answers
    while it refreshes the slots (after a connection error, so whenever the server is
    down). Everything else here, the router's 503 and the worker's backoff, treats a down
    Redis as a RedisError; so say it as a ConnectionError. Keys of different slots in one
    command (a bug, never an outage) keep their own exception.
    """

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except SlotNotCoveredError as exc:
            raise redis.ConnectionError(f"the Redis cluster is not serving this key: {exc}") from exc
        except RedisClusterException as exc:
            if type(exc) is not RedisClusterException or "same key slot" in str(exc):
                raise
            raise redis.ConnectionError(f"the Redis cluster did not answer: {exc}") from exc


# A plain client, or the cluster-aware one (follows MOVED/ASK) for cluster-mode servers.
Client = redis.Redis | RedisCluster

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


# Acknowledge and delete a stream entry in one step (MULTI in a cluster needs redis-py's
# cluster transactions, which only its newer releases have; a script works on every one).
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""

# A heartbeat (KEYS[1], JSON in ARGV[1], expiring in ARGV[2] ms) and its name (ARGV[3])
# in the set of workers (KEYS[2]); with no ARGV[1], the beat and the name are removed.
_HEARTBEAT = """
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
  return redis.call('SREM', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('SADD', KEYS[2], ARGV[3])
"""

# The `status` field of every request hash in KEYS (false for a hash that is gone).
_STATUSES = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, 'status') end
return out
"""

# Close the wake in progress (KEYS[1]) into the history (KEYS[2]), kept to ARGV[2] entries.
_WAKE_READY = """
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return redis.call('DEL', KEYS[1])
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
    """Router and worker view of the queue. Thread-safe (redis-py pools connections).

    `client` is a ready client (plain or cluster), or a callable that makes one on first
    use: a cluster client asks the server for its slots as it is built, and a queue built
    at start-up (the Lambda's cold start, the worker's launch) must not fail then because
    Redis is restarting; its first command fails instead, as a plain client's would.
    """

    def __init__(
        self,
        client: Client | Callable[[], Client],
        *,
        prefix: str = "tl",
        result_ttl_s: int = 300,
        active_ttl_s: int = 86_400,
        idempotency_ttl_s: int = 86_400,
        max_deliveries: int = 3,
    ):
        self._client: Client | None = None
        self._connect: Callable[[], Client] | None = None
        if isinstance(client, redis.Redis | RedisCluster):
            self._client = client
        else:
            self._connect = client
        self._connect_lock = threading.Lock()
        self.prefix = prefix
        self.tag = "{" + prefix + "}"
        self.result_ttl_s = result_ttl_s
        self.active_ttl_s = active_ttl_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.max_deliveries = max_deliveries
        self.stream = self.key("jobs")
        self._scripts: dict[str, Any] = {}

    @property
    def r(self) -> Client:
        """The Redis client, made on first use when the queue was given a way to make one."""
        if self._client is None:
            with self._connect_lock:
                if self._client is None:
                    assert self._connect is not None
                    self._client = self._connect()
        return self._client

    def _script(self, source: str) -> Any:
        """A registered script (EVALSHA, loaded again by redis-py after a Redis restart)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.r.register_script(source)
        return script

    @classmethod
    def from_url(cls, url: str, *, ca_data: str | None = None, **kwargs: Any) -> RedisQueue:
        """Connect lazily; `rediss://` gives TLS, as ElastiCache in-transit encryption needs.

        A `cluster=true` query (`rediss://host:6379/0?cluster=true`; settings.py adds it
        for `REDIS_CLUSTER=1`) selects redis-py's cluster client, which follows MOVED/ASK
        redirections: ElastiCache Serverless is cluster mode only. What Serverless asks of
        a client: cluster mode, and keys of one Lua script in one slot, all declared up front
        (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/WorkingWithRedis.html); TLS
        always, as every serverless cache has in-transit encryption on
        (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/in-transit-encryption.html),
        so `rediss://`; port 6379 for reads and writes (6380 is its replica port, read only,
        where a client sends READONLY: the queue never reads there, since every read here
        decides a write); access through RBAC user groups, the only access control a
        serverless cache has
        (https://docs.aws.amazon.com/AmazonElastiCache/latest/red-ug/Clusters.RBAC.html), so a
        password is the `default` user's or a named user's (`rediss://user:password@…`).
        Cluster mode has database 0 only.

        `ca_data` (PEM) is a CA to verify the server with: the RedisMode=instance
        machine's own (infra/redis/bootstrap_redis.sh).
        """
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        cluster = any(k == "cluster" and v.lower() in ("1", "true", "yes") for k, v in query)
        url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "cluster"])))
        options: dict[str, Any] = {}
        if url.startswith("rediss://"):
            # redis-py before 6.0 verified the chain but not the name (pyproject allows
            # 5.x): without this, any certificate from a public CA would do.
            options["ssl_check_hostname"] = True
        if url.startswith("rediss://") and os.environ.get("REDIS_CA_CERTS"):
            # ElastiCache's certificates chain to public CAs; a private CA bundle is for
            # self-hosted Redis (and the TLS test).
            options["ssl_ca_certs"] = os.environ["REDIS_CA_CERTS"]
        if ca_data is not None:
            if not url.startswith("rediss://"):
                raise ValueError("a CA certificate is for TLS: use a rediss:// URL")
            # RedisMode=instance: the Redis made its own CA and published the PEM. redis-py
            # adds it to the system's CAs (ssl.create_default_context), which sign no
            # certificate for a private IP address, the name checked here.
            options["ssl_ca_data"] = ca_data
        # redis-py 6 and later retry a failed command many times (8.x: 10 times, backing off up
        # to 1 s each, ~5 s in all). A request that came while Redis restarted then answered
        # seconds after it was back, and the 503 that says so came as late. Three quick tries
        # ride out a blip; the worker has its own backoff for longer outages.
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
        if cluster:
            # The same Retry, at the cluster client's level: redis-py gives each node's
            # connections no retries of their own and retries the command here, after a
            # fresh look at the slots when the error says they moved. (No
            # health_check_interval: the cluster client does not take it.)
            def connect() -> Client:
                try:
                    return _Cluster.from_url(url, socket_timeout=5, socket_connect_timeout=3, retry=retry,
                                                 **options)
                except RedisClusterException as exc:
                    # Not a RedisError (redis-py's choice): said as one, so the router's 503
                    # and the worker's backoff treat an unreachable cluster as a down Redis.
                    raise redis.ConnectionError(f"the Redis cluster did not answer: {exc}") from exc

            return cls(connect, **kwargs)
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30, retry=retry, **options
        )
        return cls(client, **kwargs)

    # -- keys -------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """The queue's key for `parts`: `key("req", id)` is `{tl}:req:<id>`. Every key starts
        with the hash tag, so all of them are in one cluster slot."""
        return ":".join((self.tag, *parts))

    def _req(self, request_id: str) -> str:
        return self.key("req", request_id)

    def _hb(self, worker: str) -> str:
        return self.key("hb", worker)

    def _gone(self, request_id: str) -> str:
        return self.key("gone", request_id)

    # -- router side -----------------------------------------------------------------
    def submit(self, owner: str, prompt: PromptRequest, status: JobStatus = JobStatus.QUEUED) -> tuple[str, bool]:
        """Enqueue a prompt; return (request_id, created). A known idempotency key returns
        the first request's id and enqueues nothing."""
        request_id = uuid.uuid4().hex
        keys = [self._req(request_id), self.stream]
        if prompt.idempotency_key:
            keys.append(self.key("idem", owner, prompt.idempotency_key))
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
        holder = _decode(self._script(_SUBMIT)(keys=keys, args=args))
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
        result = self._script(_TRANSITION)(keys=[self._req(request_id), self._gone(request_id)], args=args)
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
        """Acknowledge a finished entry and delete it from the stream, in one step."""
        self._script(_ACK)(keys=[self.stream], args=[GROUP, entry_id])

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
        if not request_ids:
            return []
        # One script, not a pipeline: a cluster client splits a pipeline by node itself,
        # but one script is one round trip on either kind of client.
        reply = self._script(_STATUSES)(keys=[self._req(rid) for rid in request_ids])
        return [_decode(v) for v in reply]

    def write_text(self, request_id: str, text: str, first_token: float | None) -> str | None:
        """Store the text so far; return the job's status (not 'running' means stop)."""
        result = self._script(_WRITE_TEXT)(
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
        beat = json.dumps({**info, "ts": time.time()})
        self._script(_HEARTBEAT)(keys=[self._hb(worker), self.key("hb")], args=[beat, int(ttl_s * 1000), worker])

    def beat(self, worker: str) -> dict[str, Any] | None:
        """`worker`'s live heartbeat, or None once it has expired."""
        raw = self.r.get(self._hb(worker))
        return json.loads(raw) if raw else None

    def clear_heartbeat(self, worker: str) -> None:
        """Remove `worker`'s beat and name (a warm stop: it says goodbye at once)."""
        self._script(_HEARTBEAT)(keys=[self._hb(worker), self.key("hb")], args=["", 0, worker])

    def workers(self) -> list[dict[str, Any]]:
        """Heartbeats of live workers, freshest first (names whose beat expired are dropped)."""
        names = [_decode(n) for n in self.r.smembers(self.key("hb"))]
        if not names:
            return []
        values = self.r.mget([self._hb(n) for n in names])
        gone = [n for n, v in zip(names, values, strict=True) if v is None]
        if gone:
            self.r.srem(self.key("hb"), *gone)
        beats = [json.loads(v) for v in values if v]
        return sorted(beats, key=lambda b: b.get("ts", 0), reverse=True)

    def wake_started(self) -> bool:
        """Record that a wake was requested now; False when one is already under way."""
        key = self.key("wake")
        if self.r.hsetnx(key, "requested", repr(time.time())):
            # A wake that has not finished in 10 minutes failed (the worker never came
            # up); let the record go so the next wake's ETA is not measured from it.
            self.r.expire(key, WAKE_RECORD_TTL_S)
            return True
        return False

    def wake_phase(self, phase: str) -> None:
        """Record when the wake in progress reached `phase` (first time only)."""
        key = self.key("wake")
        if self.r.exists(key):
            self.r.hsetnx(key, phase, repr(time.time()))

    def wake_current(self) -> dict[str, float]:
        raw = self.r.hgetall(self.key("wake"))
        return {_decode(k): float(v) for k, v in raw.items()}

    def wake_ready(self) -> dict[str, float] | None:
        """Close the wake in progress (the worker is ready); keep its phases in history."""
        key = self.key("wake")
        self.wake_phase("ready")
        phases = self.wake_current()
        if "requested" not in phases:
            return None
        self._script(_WAKE_READY)(keys=[key, self.key("wakes")], args=[json.dumps(phases), WAKE_HISTORY])
        return phases

    def wake_history(self) -> list[dict[str, float]]:
        return [json.loads(v) for v in self.r.lrange(self.key("wakes"), 0, WAKE_HISTORY - 1)]

    def keep_wakes_of(self, engine: str) -> None:
        """Forget wakes measured with another engine: a local Redis that keeps its data
        outlives a change of engine, and an echo worker's 0.3 s says nothing of vLLM's 40 s."""
        key = self.key("wakes")
        if _decode(self.r.set(self.key("wakes", "engine"), engine, get=True)) not in (None, engine):
            self.r.delete(key)

    def restore_wakes(self, wakes: list[dict[str, float]]) -> None:
        """Seed an empty history with wakes an earlier run measured (newest first)."""
        key = self.key("wakes")
        if wakes and not self.r.llen(key):
            self.r.rpush(key, *[json.dumps(w) for w in wakes[:WAKE_HISTORY]])

    def adopt_legacy_keys(self) -> int:
        """Give keys of the layout before the hash tag (`tl:req:…`) today's names
        (`{tl}:req:…`); return how many were renamed.

        For a Redis that keeps its data across an upgrade: the local service's append-only
        file holds finished answers (7 days), jobs still queued and the measured wakes
        under the old names. RENAME keeps each key's value, TTL and a stream's consumer
        group, so nothing is lost; RENAMENX never overwrites a key the new layout wrote
        already. Run it before anything writes (before `ensure_group`). Plain Redis only:
        a cluster-mode Redis never held the old names, since nothing worked there.
        """
        if isinstance(self.r, RedisCluster):
            return 0
        moved = 0
        for old in self.r.scan_iter(match=f"{self.prefix}:*", count=500):
            name = _decode(old)
            if self.r.renamenx(name, f"{self.tag}{name[len(self.prefix):]}"):
                moved += 1
            else:
                log.warning("kept %s: %s already exists under the new name", name, self.tag)
        return moved

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
        # "length": the answer was cut at max_tokens (the app says so and offers to continue).
        "finish_reason": job.get("finish_reason") or None,
        "error": json.loads(job["error"]) if job.get("error") else None,
        "attempt": attempt,
        "retrying": attempt > 1 and not JobStatus(job.get("status") or "queued").terminal,
    }
