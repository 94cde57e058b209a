"""Job states, their allowed transitions, and the request a job carries.

A request moves queued → (waking) → running → done | failed | cancelled, and is
`expired` once its result has aged out. `running → queued` is the one way back: a job
whose worker died is reclaimed and runs again from the start.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    WAKING = "waking"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
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


class InvalidTransition(ValueError):
    """A status change the state machine does not allow (a bug, or a lost race)."""


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    """Whether `current → new` is an allowed move."""
    return new in ALLOWED[current]


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise InvalidTransition unless `current → new` is allowed."""
    if not can_transition(current, new):
        raise InvalidTransition(f"job cannot go from {current} to {new}")
