"""One app per person and data folder: a second launch raises the first window and exits.

Two windows on one history would each write the same SQLite file and settings, and each
would resume the same answers. The first launch takes a lock file in the data folder
(QLockFile: a lock whose process has died is stale at once, so a crash never blocks the
next start) and, once its window is painted, listens on a local socket (a Unix socket in
the temp folder, a named pipe on Windows). A later launch finds the lock taken, connects,
says "activate" and exits. The socket's name comes from the user and the data folder, so
two people on one machine, or one person with two `--data-dir` folders, each get their own
app.

The lock is the only part on the way to the first window: QtNetwork (and the name's
hash) load after it, which keeps ~25 ms off every launch (bench/ui_startup.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QDeadlineTimer, QLockFile, QObject, QThread, Signal

if TYPE_CHECKING:
    from PySide6.QtNetwork import QLocalServer, QLocalSocket

ACTIVATE = b"activate\n"
LOCK_FILE = "tinyllama.lock"
# The first instance listens once its window is painted (well under a second after its
# lock); a second launch keeps trying that long, then says the first does not answer.
CONNECT_TIMEOUT_MS = 5000
RETRY_MS = 50

log = logging.getLogger("tinyllama.desktop")


def server_name(data_dir: Path) -> str:
    """The socket's name for this user and data folder (short: Unix socket paths are limited)."""
    import getpass
    import hashlib

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        user = "unknown"
    digest = hashlib.sha256(f"{user}\0{Path(data_dir).resolve()}".encode()).hexdigest()
    return f"tinyllama-{digest[:16]}"


class SingleInstance(QObject):
    """`claim()` says whether this is the first instance; `activate_running()` hands over
    to the first; `listen()` lets later launches reach this one."""

    activated = Signal()  # a second launch asked this one to show its window

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        self._lock = QLockFile(str(self.data_dir / LOCK_FILE))
        self._lock.setStaleLockTime(0)  # stale only when its process is gone, however long it runs
        self._server: QLocalServer | None = None

    def claim(self) -> bool:
        """Take the data folder's lock; False when a running instance holds it. A lock file
        that cannot be written at all does not keep the app from starting: it starts
        unguarded, as when the socket cannot listen, and says so in the log."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._lock.tryLock(0):
            return True
        if self._lock.error() == QLockFile.LockError.LockFailedError:
            return False  # held: another instance runs
        log.warning("No single-instance lock in %s (%s): a second launch may open a second window",
                    self.data_dir, self._lock.error().name)
        return True

    def take_over(self) -> bool:
        """Break a lock whose holder does not answer (the person chose to start anyway).
        False while a live process still holds it: Qt also locks the file itself, and only
        a lock nobody holds any more (its process id since reused) can be removed."""
        self._lock.removeStaleLockFile()
        return self._lock.tryLock(0)

    def owner_pid(self) -> int | None:
        """The process holding the lock, when it is another one."""
        info = self._lock.getLockInfo()  # PySide: (pid, host name, app name), or a falsy value
        return (int(info[0]) or None) if info else None

    def activate_running(self) -> bool:
        """Ask the first instance to show its window; True when it took the message. It may
        have just started and not be listening yet, so this retries for CONNECT_TIMEOUT_MS."""
        from PySide6.QtNetwork import QLocalSocket

        name = server_name(self.data_dir)
        deadline = QDeadlineTimer(CONNECT_TIMEOUT_MS)
        while True:
            socket = QLocalSocket()
            socket.connectToServer(name)
            if socket.waitForConnected(max(1, min(RETRY_MS * 4, deadline.remainingTime()))):
                return self._say_activate(socket)
            if deadline.hasExpired():
                return False
            QThread.msleep(RETRY_MS)

    def listen(self) -> bool:
        """Let later launches reach this one. A socket file left by one that was killed is
        removed first: this instance holds the lock, so nobody else listens on it."""
        from PySide6.QtNetwork import QLocalServer

        name = server_name(self.data_dir)
        QLocalServer.removeServer(name)
        server = QLocalServer(self)
        # Only this user may connect (the name is not a secret: it is a hash of a path).
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(name):
            log.warning("A second launch cannot reach this window: %s", server.errorString())
            return False
        server.newConnection.connect(self._connection)
        self._server = server
        log.info("Listening for a second launch as %s", name)
        return True

    def close(self) -> None:
        """Stop listening (the socket file goes too) and give the lock back."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._lock.unlock()

    @staticmethod
    def _say_activate(socket: QLocalSocket) -> bool:
        socket.write(ACTIVATE)
        delivered = socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
        socket.disconnectFromServer()
        return delivered

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
