"""One ComputeState: the service answers with it and the desktop app reads it back."""

from __future__ import annotations

from backend.core.ports import ComputeState
from desktop.core import models


def test_the_app_reads_the_service_s_own_enum() -> None:
    assert models.ComputeState is ComputeState
    for state in ComputeState.reported():
        assert models.Compute.from_api({"state": state.value, "eta_s": 3}).state is state


def test_unknown_is_the_app_s_and_never_reported() -> None:
    assert ComputeState.UNKNOWN not in ComputeState.reported()
    assert [s.value for s in ComputeState.reported()] == ["stopped", "starting", "loading_model", "ready", "stopping"]
    assert ComputeState.parse("hibernating") is ComputeState.UNKNOWN
    assert models.Compute.from_api({"state": None}).state is ComputeState.UNKNOWN
    assert ComputeState.LOADING_MODEL.label == "Loading model"
