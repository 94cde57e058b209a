"""The app's log file and the "Copy diagnostics" report. Qt-free.

The log rotates under platformdirs' user log dir; the last warnings and errors are also
kept in memory for the report. Everything that leaves the app through the report passes
`redact()`: bearer tokens, JWTs, passwords in URLs and long random strings never do.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from desktop.core.paths import APP_NAME

LOG_FILE_NAME = "tinyllama.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REDACTED = "[redacted]"
# Pattern strings, not compiled patterns: `re` compiles (and caches) each at the first
# redact, which keeps their compilation off the app's start-up.
_SECRETS = [
    # Authorization headers and "Bearer <token>" anywhere.
    (r"(?i)\b(bearer|basic)\s+[^\s\"',;]+", r"\1 " + REDACTED),
    # JWTs (Cognito's access, id and refresh-looking tokens).
    (r"\beyJ[\w-]+\.[\w-]+\.[\w-]*", REDACTED),
    # Passwords in URLs: redis://:secret@host, https://user:secret@host.
    (r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]*:[^/\s@]*@", r"\1" + REDACTED + "@"),
    # key=value and "key": "value" for anything that sounds secret.
    (
        r"(?i)\b([\w-]*(?:token|secret|password|passwd|api[_-]?key|authorization)[\w-]*)"
        r"(\"?\s*[:=]\s*\"?)[^\s\"',;&]+",
        r"\1\2" + REDACTED,
    ),
    # AWS access key ids.
    (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", REDACTED),
    # Any other long random-looking run (token_urlsafe, hex keys): letters with digits, or
    # both cases. It is bounded by what cannot be in it, not \b: a token_urlsafe may start
    # or end with "-", and one in 250 has no digit.
    (r"(?<![\w-])(?:(?=[\w-]*\d)(?=[\w-]*[A-Za-z])|(?=[\w-]*[a-z])(?=[\w-]*[A-Z]))[\w-]{32,}(?![\w-])",
     REDACTED),
]


def redact(text: str) -> str:
    """`text` with everything that looks like a credential replaced by "[redacted]"."""
    for pattern, replacement in _SECRETS:
        text = re.sub(pattern, replacement, text)
    return text


def app_version() -> str:
    """The installed (or bundled) distribution's version: pyproject.toml's, via its metadata."""
    from importlib.metadata import PackageNotFoundError, version  # heavy: loaded when asked

    try:
        return version("tinyllama")
    except PackageNotFoundError:
        return "unknown (not installed)"


def default_log_dir() -> Path:
    """Where the log file lives: platformdirs' user log dir for the app."""
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


_installed: list[logging.Handler] = []


class RecentErrors(logging.Handler):
    """Keeps the last `capacity` warnings and errors (redacted) for the diagnostics report."""

    def __init__(self, capacity: int = 20) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[str] = deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(redact(self.format(record)))
        except Exception:  # a broken record must not take the app down
            self.handleError(record)

    def messages(self) -> list[str]:
        return list(self.records)


class LogFile(logging.Handler):
    """The rotating log file, opened at the first record it is given. The app's first records
    come after its window is on screen, and so does logging.handlers, with the socket and
    pickle modules it imports (2.4 % of a launch's instructions to the first paint)."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.path = path
        self.file: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is None:
            import logging.handlers

            try:
                self.file = logging.handlers.RotatingFileHandler(
                    self.path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
            except OSError:
                self.handleError(record)  # said on stderr, as logging does; the app goes on
                return
            self.file.setFormatter(self.formatter)
        self.file.emit(record)  # under this handler's lock, taken by handle()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def setup_logging(log_dir: Path, recent: RecentErrors | None = None) -> Path:
    """Log INFO and above to a rotating file in `log_dir` (and into `recent`); returns the file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LOG_FILE_NAME
    handler = LogFile(path)
    root = logging.getLogger()
    for old in _installed:  # a second app in this process (tests) replaces the first's
        root.removeHandler(old)
        old.close()
    _installed[:] = [handler] + ([recent] if recent is not None else [])
    for new in _installed:
        root.addHandler(new)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return path


def diagnostics_report(
    *,
    profile: str,
    errors: list[str],
    log_file: Path | None = None,
    extra_versions: Mapping[str, str] | None = None,
) -> str:
    """A plain-text report to paste into a bug report. Never holds a token."""
    import platform

    lines = [
        f"TinyLlama {app_version()}" + (" (bundle)" if getattr(sys, "frozen", False) else ""),
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"OS {platform.platform()}",
    ]
    lines += [f"{name} {value}" for name, value in (extra_versions or {}).items()]
    lines.append(f"Profile: {profile}")
    if log_file is not None:
        lines.append(f"Log file: {log_file}")
    lines.append("Last errors:" if errors else "Last errors: none")
    lines += [f"  {line}" for line in errors]
    return redact("\n".join(lines)) + "\n"
