"""One app per person and data folder: a second launch raises the first window and exits.

Two windows on one history would each write the same SQLite file and settings, and each
would resume the same answers. The first launch listens on a local socket (a Unix socket
in the temp folder, a named pipe on Windows); a later one connects, says "activate" and
exits. The name comes from the user and the data folder, so two people on one machine, or
one person with two `--data-dir` folders, each get their own app.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

ACTIVATE = b"activate\n"
# A listening first instance answers at once; this only bounds a wedged one.
CONNECT_TIMEOUT_MS = 1000

log = logging.getLogger("tinyllama.desktop")


def server_name(data_dir: Path) -> str:
    """The socket's name for this user and data folder (short: Unix socket paths are limited)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        user = "unknown"
    digest = hashlib.sha256(f"{user}\0{Path(data_dir).resolve()}".encode()).hexdigest()
    return f"tinyllama-{digest[:16]}"


class SingleInstance(QObject):
    """`activate_running()` hands over to a first instance; `listen()` becomes it."""

    activated = Signal()  # a second launch asked this one to show its window

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server: QLocalServer | None = None

    def activate_running(self) -> bool:
        """Ask a running first instance to show its window; True when one took the message."""
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
            return False  # none runs, or only a stale socket of one that crashed
        socket.write(ACTIVATE)
        delivered = socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
        socket.disconnectFromServer()
        return delivered

    def listen(self) -> bool:
        """Become the first instance. A socket file left by one that was killed is removed
        first: nothing answered on it, or `activate_running` would have returned True."""
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        # Only this user may connect (the name is not a secret: it is a hash of a path).
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("A second launch will open a second window: %s", server.errorString())
            return False
        server.newConnection.connect(self._connection)
        self._server = server
        log.info("Listening for a second launch as %s", self.name)
        return True

    def close(self) -> None:
        """Stop listening (the socket file goes too)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def _connection(self) -> None:
        server = self._server
        while server is not None and (socket := server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            return
        if bytes(socket.readLine().data()) == ACTIVATE:
            log.info("A second launch asked for this window")
            self.activated.emit()
