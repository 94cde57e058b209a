"""Secrets (the Cognito refresh token, an OpenAI-compatible server's API key) in the OS keyring, behind one class.

When the machine has no keyring backend (a headless box, some Linux desktops without a
Secret Service), the store keeps secrets in memory only and says so in `notice`, so the
app can tell the person they will sign in again next time. Never a plain file.
"""

from __future__ import annotations

import contextlib
from typing import Any

SERVICE = "TinyLlama"
# The API key of the OpenAI-compatible server the Local profile uses (Account → Model…).
ENGINE_API_KEY = "local-engine-api-key"


class MemoryKeyring:
    """An in-process keyring with keyring's three calls; for tests and the fallback."""

    priority = 1

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, name: str) -> str | None:
        return self._items.get((service, name))

    def set_password(self, service: str, name: str, value: str) -> None:
        self._items[(service, name)] = value

    def delete_password(self, service: str, name: str) -> None:
        self._items.pop((service, name), None)


def _usable_system_keyring() -> Any | None:
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    chained = getattr(backend, "backends", None)
    if chained:
        # A chainer falls through to the next backend when one refuses, which could be a
        # file; use the best backend that is not one, on its own.
        safe = [b for b in chained if not _writes_plain_files(b)]
        return max(safe, key=lambda b: getattr(b, "priority", 0)) if safe else None
    if _writes_plain_files(backend):
        return None
    chainer = getattr(backend, "backends", None)
    if chainer is not None and not chainer:
        return None
    return backend


def _writes_plain_files(backend: Any) -> bool:
    """keyrings.alt's backends (Debian and Ubuntu ship the package) keep secrets in a file
    under the home folder, plain or with a guessable key: no better than the plain file the
    refresh token must never be in."""
    return type(backend).__module__.startswith("keyrings.alt")


class CredentialStore:
    """get/set/delete secrets by name; `persistent` says whether they survive a restart."""

    def __init__(self, backend: Any | None = None, service: str = SERVICE) -> None:
        self.service = service
        self.notice = ""
        if backend is None:
            backend = _usable_system_keyring()
            if backend is None:
                backend = MemoryKeyring()
                self.notice = (
                    "No system keyring was found, so your sign-in is kept in memory only: "
                    "you will need to sign in again next time you start TinyLlama."
                )
        self._backend = backend

    @property
    def persistent(self) -> bool:
        return not isinstance(self._backend, MemoryKeyring)

    def get(self, name: str) -> str | None:
        try:
            return self._backend.get_password(self.service, name)
        except Exception:
            return None

    def set(self, name: str, value: str) -> None:
        try:
            self._backend.set_password(self.service, name, value)
        except Exception as exc:
            # A locked or broken keyring must not lose the session we just got.
            self._backend = MemoryKeyring()
            self._backend.set_password(self.service, name, value)
            self.notice = f"The system keyring refused to store your sign-in ({exc}); kept in memory."

    def delete(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self._backend.delete_password(self.service, name)
