"""The job state machine: what may follow what, and that a forbidden move raises."""

from __future__ import annotations

import itertools

import pytest

from backend.core.jobs import (
    ALLOWED,
    TERMINAL,
    InvalidTransition,
    JobStatus,
    can_transition,
    check_transition,
)

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


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_have_no_exits(terminal: JobStatus) -> None:
    assert ALLOWED[terminal] == frozenset()
    for target in ALL:
        assert not can_transition(terminal, target)
        with pytest.raises(InvalidTransition):
            check_transition(terminal, target)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ALL, ALL)))
def test_table_is_the_lifecycle(current: JobStatus, new: JobStatus) -> None:
    allowed = (current, new) in EXPECTED
    assert can_transition(current, new) is allowed
    if allowed:
        check_transition(current, new)
    else:
        with pytest.raises(InvalidTransition) as info:
            check_transition(current, new)
        assert str(current) in str(info.value) and str(new) in str(info.value)


def test_the_only_way_back_to_queued_from_work_is_the_reclaim() -> None:
    into_queued = {s for s in ALL if can_transition(s, S.QUEUED)}
    assert into_queued == {S.WAKING, S.RUNNING}
    assert not any(can_transition(s, S.WAKING) for s in (S.RUNNING, *TERMINAL))


def test_nothing_moves_to_expired_or_to_itself() -> None:
    # `expired` is what a reader sees once the hash is gone, never a stored transition.
    assert not any(can_transition(s, S.EXPIRED) for s in ALL)
    assert not any(can_transition(s, s) for s in ALL)


def test_invalid_transition_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_transition(S.DONE, S.RUNNING)


def test_statuses_are_their_wire_strings() -> None:
    assert S("running") is S.RUNNING
    assert f"{S.CANCELLED}" == "cancelled"
