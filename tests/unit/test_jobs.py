"""The job state machine: the table of allowed moves, and that the queue's atomic Lua
transition (the only place a status changes) follows it on a real redis-server."""

from __future__ import annotations

import itertools

import pytest

from backend.adapters.redis_queue import RedisQueue
from backend.core.jobs import ALLOWED, TERMINAL, JobStatus
from backend.core.prompts import parse_prompt

S = JobStatus
ALL = list(S)

# The lifecycle of DESIGN.md, written out independently of the table under test.
EXPECTED = {
    (S.QUEUED, S.WAKING), (S.QUEUED, S.RUNNING), (S.QUEUED, S.CANCELLED), (S.QUEUED, S.FAILED),
    (S.WAKING, S.QUEUED), (S.WAKING, S.RUNNING), (S.WAKING, S.CANCELLED), (S.WAKING, S.FAILED),
    (S.RUNNING, S.DONE), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.QUEUED),  # the one way back: a dead worker's job is reclaimed
}


def test_every_status_has_a_row() -> None:
    assert set(ALLOWED) == set(ALL)


def test_terminal_states() -> None:
    assert {S.DONE, S.FAILED, S.CANCELLED, S.EXPIRED} == TERMINAL
    assert [s for s in ALL if s.terminal] == [S.DONE, S.FAILED, S.CANCELLED, S.EXPIRED]
    assert all(ALLOWED[s] == frozenset() for s in TERMINAL)


def test_table_is_the_lifecycle() -> None:
    assert {(c, n) for c, targets in ALLOWED.items() for n in targets} == EXPECTED


def test_nothing_moves_to_expired_or_to_itself() -> None:
    # `expired` is what a reader sees once the hash is gone, never a stored transition.
    assert not any(S.EXPIRED in targets for targets in ALLOWED.values())
    assert not any(s in ALLOWED[s] for s in ALL)


def test_statuses_are_their_wire_strings() -> None:
    assert S("running") is S.RUNNING
    assert f"{S.CANCELLED}" == "cancelled"


def _request_in(queue: RedisQueue, status: JobStatus) -> str:
    request_id, _ = queue.submit("alice", parse_prompt({"messages": [{"role": "user", "content": "hi"}]}))
    # Put the stored status where the case needs it, as a worker or an earlier move would have.
    queue.r.hset(queue.key("req", request_id), "status", status.value)
    return request_id


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ALL, ALL)),
                         ids=lambda s: str(s))
def test_the_queue_moves_a_request_exactly_as_the_table_allows(queue: RedisQueue, current: JobStatus,
                                                               new: JobStatus) -> None:
    request_id = _request_in(queue, current)
    result = queue.transition(request_id, new, error="x")
    stored = queue.r.hget(queue.key("req", request_id), "status")
    if (current, new) in EXPECTED:
        assert result == "OK"
        assert stored == new.value.encode()
    else:
        assert result == current.value  # refused: the blocking status comes back
        assert stored == current.value.encode()  # ...and nothing was written
        assert queue.r.hget(queue.key("req", request_id), "error") is None


def test_a_request_that_is_gone_cannot_move(queue: RedisQueue) -> None:
    assert queue.transition("0" * 32, S.RUNNING) is None
