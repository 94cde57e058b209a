"""The log file and the diagnostics report: rotation, and no token ever in the report."""

from __future__ import annotations

import logging
import logging.handlers
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core import diagnostics
from desktop.core.diagnostics import RecentErrors, diagnostics_report, redact, setup_logging

JWT = "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJzdWIiOiJ1c2VyLTEiLCJ0b2tlbl91c2UiOiJhY2Nlc3MifQ.c2lnbmF0dXJlLWJ5dGVz"
LOCAL_TOKEN = secrets.token_urlsafe(24)
REDIS_PASSWORD = secrets.token_urlsafe(24)
SECRETS = [JWT, LOCAL_TOKEN, REDIS_PASSWORD, "hunter2-pass", "AKIAIOSFODNN7EXAMPLE"]


@pytest.fixture
def logging_to(tmp_path: Path) -> Iterator[tuple[Path, RecentErrors]]:
    recent = RecentErrors(capacity=5)
    path = setup_logging(tmp_path / "logs", recent)
    yield path, recent
    root = logging.getLogger()
    for handler in diagnostics._installed:
        root.removeHandler(handler)
        handler.close()
    diagnostics._installed.clear()


def test_a_token_in_the_last_errors_never_reaches_the_diagnostics(logging_to: tuple[Path, RecentErrors]) -> None:
    _path, recent = logging_to
    log = logging.getLogger("tinyllama.test")
    log.error("request failed: Authorization: Bearer %s", JWT)
    log.warning("the local token %s was refused", LOCAL_TOKEN)
    log.error("cannot reach redis://:%s@127.0.0.1:6379/0", REDIS_PASSWORD)
    log.warning('settings: {"password": "hunter2-pass", "aws_key": "AKIAIOSFODNN7EXAMPLE"}')

    report = diagnostics_report(profile="local", errors=recent.messages(), extra_versions={"Qt": "6.x"})

    for secret in SECRETS:
        assert secret not in report
    assert report.count("[redacted]") >= 5
    assert "Profile: local" in report and "request failed" in report and "Qt 6.x" in report
    assert report.startswith("TinyLlama ")


@pytest.mark.parametrize("token", [
    "h9sEoVHY9aUmPdE3r5KG6N5qn9km_pS-",  # token_urlsafe ends with "-" (one in 64)
    "-Ab3dEfGhIjKlMnOpQrStUvWxYz01234",  # or starts with it
    "SqJXgVtiWUhWQFwlLUaHLYQxcdsw_eqJ",  # or has no digit (one in 250)
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # a hex key
])
def test_a_random_token_is_redacted_whole_whatever_its_first_and_last_characters(token: str) -> None:
    assert redact(f"the local token {token} was refused") == "the local token [redacted] was refused"


def test_redact_keeps_ordinary_text() -> None:
    text = "The GPU is stopping; your prompt will start when it is back (about 40 s). HTTP 503 at /prompts"
    assert redact(text) == text
    assert redact(f"token={LOCAL_TOKEN}&x=1") == "token=[redacted]&x=1"
    for name in ("TINYLLAMA_RUNTIME_DIR_AND_MORE_WORDS", "desktop.views.main_window.MainWindow._shown_changed",
                 "a_long_snake_case_name_of_no_secret_at_all"):
        assert redact(name) == name


def test_recent_errors_keeps_only_the_last_warnings_and_errors(logging_to: tuple[Path, RecentErrors]) -> None:
    _path, recent = logging_to
    log = logging.getLogger("tinyllama.test")
    log.info("not an error")
    for i in range(8):
        log.error("error %d", i)
    assert [m.rsplit(" ", 1)[-1] for m in recent.messages()] == ["3", "4", "5", "6", "7"]
    assert diagnostics_report(profile="aws", errors=[]).endswith("Last errors: none\n")


def test_the_log_file_rotates(logging_to: tuple[Path, RecentErrors], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _recent = logging_to
    handler = diagnostics._installed[0]
    assert isinstance(handler, diagnostics.LogFile) and handler.file is None  # opened at the first record
    log = logging.getLogger("tinyllama.test")
    log.info("the first line")
    assert isinstance(handler.file, logging.handlers.RotatingFileHandler)
    monkeypatch.setattr(handler.file, "maxBytes", 2000)
    for i in range(100):
        log.info("line %03d %s", i, "x" * 50)
    handler.flush()
    assert path.name == "tinyllama.log" and path.is_file()
    assert path.with_name("tinyllama.log.1").is_file()
    assert not path.with_name(f"tinyllama.log.{diagnostics.LOG_BACKUPS + 1}").exists()
    assert "line 099" in path.read_text(encoding="utf-8")


def test_a_second_setup_replaces_the_first_handlers(tmp_path: Path, logging_to: tuple[Path, RecentErrors]) -> None:
    before = len(logging.getLogger().handlers)
    setup_logging(tmp_path / "again", RecentErrors())
    assert len(logging.getLogger().handlers) == before


def test_a_log_file_that_cannot_be_opened_costs_no_record_elsewhere(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "logs" / diagnostics.LOG_FILE_NAME).mkdir(parents=True)  # a folder where the file goes
    recent = RecentErrors()
    setup_logging(tmp_path / "logs", recent)
    try:
        logging.getLogger("tinyllama.test").error("the engine stopped")  # no exception reaches the caller
        assert recent.messages()[-1].endswith("the engine stopped")
        assert "Logging error" in capsys.readouterr().err  # logging's own notice, on stderr
    finally:
        for handler in diagnostics._installed:
            logging.getLogger().removeHandler(handler)
            handler.close()
        diagnostics._installed.clear()
