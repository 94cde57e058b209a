"""Before Qt starts on Linux: are the libraries of Qt's X11 (xcb) platform plugin here?

When the xcb plugin cannot load, Qt aborts the process and its message names only the
first library it missed (usually libxcb-cursor0), so a person installs one, runs again
and meets the next. This looks for all of them first and says, in one line, which are
missing and the apt-get command that installs them. Qt-free: it only tries to load the
shared libraries (through an injectable loader, so tests can say which are "missing").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

# What PySide6's libqxcb.so and libQt6XcbQpa.so load from the system (ldd on both), with
# the Debian/Ubuntu package of each. Desktop installs usually lack the first three.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def _load(soname: str) -> None:
    import ctypes  # only where Qt will use xcb: the import alone is ~4 ms of every launch

    ctypes.CDLL(soname)


def will_use_xcb(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt will try its X11 platform: on Linux, when QT_QPA_PLATFORM names xcb (also
    as a fallback, "wayland;xcb"), or when it is unset outside a Wayland session."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return "xcb" in [name.split(":")[0].strip() for name in chosen.split(";")]
    wayland = environ.get("XDG_SESSION_TYPE") == "wayland" and bool(environ.get("WAYLAND_DISPLAY"))
    return not wayland


def missing_libraries(loader: Callable[[str], object] = _load) -> list[str]:
    """The sonames of XCB_LIBRARIES that `loader` cannot load (OSError), in table order."""
    missing = []
    for soname in XCB_LIBRARIES:
        try:
            loader(soname)
        except OSError:
            missing.append(soname)
    return missing


def xcb_problem(environ: Mapping[str, str] | None = None, platform: str = sys.platform,
                loader: Callable[[str], object] = _load, is_root: bool | None = None) -> str:
    """What to tell a person before Qt aborts for want of xcb libraries; "" when all is well."""
    if not will_use_xcb(os.environ if environ is None else environ, platform):
        return ""
    missing = missing_libraries(loader)
    if not missing:
        return ""
    packages = " ".join(XCB_LIBRARIES[soname] for soname in missing)
    if is_root is None:
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = "" if is_root else "sudo "
    return (f"TinyLlama's window needs X11 libraries that are not installed: {', '.join(missing)}. "
            f"On Debian or Ubuntu install them with: {sudo}apt-get install -y {packages}")
