"""Job states, their allowed transitions, and the request a job carries.

A request moves queued → (waking) → running → done | failed | cancelled, and is
`expired` once its result has aged out. `running → queued` is the one way back: a job
whose worker died is reclaimed and runs again from the start. `ALLOWED` is enforced where
the status lives: the queue's Lua script changes a status only from the states listed
here, atomically (`backend.adapters.redis_queue`).
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """A request's status, as the API and the request hash spell it."""

    QUEUED = "queued"
    WAKING = "waking"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """Whether nothing follows (the result only waits to expire)."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.WAKING, JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.WAKING: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.DONE: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}
