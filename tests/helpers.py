"""Small helpers shared by tests: wait on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

_POLL = threading.Event()  # never set: `.wait(t)` is an interruptible pause between polls


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               message: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; return that value.

    Fails the test (AssertionError) with `message` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate!r}")
        _POLL.wait(interval)


PACKAGING = Path(__file__).resolve().parents[1] / "packaging"


def load_script(name: str) -> ModuleType:
    """A packaging/ script as a module (packaging/ is no package: PyPI's `packaging` owns the name)."""
    spec = importlib.util.spec_from_file_location(f"tl_{name}", PACKAGING / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(PACKAGING))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PACKAGING))
    return module
