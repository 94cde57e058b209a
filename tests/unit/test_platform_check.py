"""Which of Qt's xcb libraries are missing, said before Qt aborts; the loader is injected,
so "missing" is whatever the test says, on any machine."""

from __future__ import annotations

import sys

import pytest

from desktop.core import platform_check as pc


def loader_missing(*missing: str):  # type: ignore[no-untyped-def]
    """A loader that fails, as ctypes.CDLL does, for the sonames given."""
    tried: list[str] = []

    def load(soname: str) -> None:
        tried.append(soname)
        if soname in missing:
            raise OSError(f"{soname}: cannot open shared object file: No such file or directory")

    load.tried = tried  # type: ignore[attr-defined]
    return load


def test_every_missing_library_is_named_with_its_package() -> None:
    load = loader_missing("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0")
    text = pc.xcb_problem({"DISPLAY": ":0"}, "linux", load, is_root=False)
    assert load.tried == list(pc.XCB_LIBRARIES)  # all looked for, not just up to the first miss
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert text.endswith("sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1")


def test_root_is_told_the_command_without_sudo() -> None:
    text = pc.xcb_problem({}, "linux", loader_missing("libxcb-keysyms.so.1"), is_root=True)
    assert text.endswith(": apt-get install -y libxcb-keysyms1")


def test_nothing_is_said_when_everything_loads() -> None:
    assert pc.xcb_problem({"DISPLAY": ":0"}, "linux", loader_missing()) == ""


@pytest.mark.parametrize(("environ", "platform", "xcb"), [
    ({}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", True),  # xcb as the fallback
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"QT_QPA_PLATFORM": "wayland"}, "linux", False),
    ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
    ({"XDG_SESSION_TYPE": "wayland"}, "linux", True),  # no compositor to talk to: Qt falls back to xcb
    ({}, "darwin", False),
    ({}, "win32", False),
])
def test_only_an_xcb_platform_is_checked(environ: dict[str, str], platform: str, xcb: bool) -> None:
    load = loader_missing("libxcb-icccm.so.4")
    assert pc.will_use_xcb(environ, platform) is xcb
    assert bool(pc.xcb_problem(environ, platform, load)) is xcb
    assert load.tried == (list(pc.XCB_LIBRARIES) if xcb else [])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sonames are Linux's")
def test_the_real_loader_finds_libc_and_not_a_made_up_library() -> None:
    pc._load("libc.so.6")
    with pytest.raises(OSError):
        pc._load("libtinyllama-does-not-exist.so.9")
