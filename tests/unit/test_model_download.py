"""The model downloader against a real loopback HTTP server (tests/fixtures/model_server.py):
full download, resume after a cut, a wrong checksum, 404, a full disk, Cancel."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.core.model_catalog import TINYLLAMA_CHAT, CatalogModel
from desktop.services.model_download import (
    CHUNK,
    SPARE_BYTES,
    DownloadCancelled,
    DownloadError,
    ModelDownloader,
    Progress,
)
from tests.fixtures.model_server import ModelServer
from tests.helpers import wait_until

# Big enough for several chunks and a cut in the middle, small enough to be instant.
PAYLOAD = os.urandom(3 * (1 << 20) + 12345)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer(PAYLOAD) as s:
        yield s


def _model(server: ModelServer, **changes: object) -> CatalogModel:
    pinned = TINYLLAMA_CHAT._replace(file_name="tiny.gguf", size_bytes=len(PAYLOAD), sha256=server.sha256)
    return pinned._replace(**changes)  # type: ignore[arg-type]


def _downloader(tmp_path: Path, **kwargs: object) -> ModelDownloader:
    return ModelDownloader(tmp_path / "models", retry_wait_s=0.0, **kwargs)  # type: ignore[arg-type]


def test_full_download_is_verified_and_moved_into_place(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    downloader = _downloader(tmp_path)
    seen: list[Progress] = []
    assert not downloader.installed(model)
    path = downloader.download(model, seen.append, url=server.url)
    assert path == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == PAYLOAD
    assert not downloader.part(model).exists()
    assert downloader.installed(model)
    assert seen and seen[-1].done == seen[-1].total == len(PAYLOAD) and seen[-1].fraction == 1.0
    assert all(p.speed_bps >= 0 for p in seen) and seen[-1].eta_s == 0
    assert server.ranges == [None]
    # Installed: a second call neither asks the server nor rewrites the file.
    assert downloader.download(model, url=server.url) == path and server.ranges == [None]


def test_a_cut_connection_resumes_with_range(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    server.cut_next = 1
    path = _downloader(tmp_path).download(model, url=server.url)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == server.sha256
    assert server.ranges[0] is None
    # The second request asked only for what the first did not deliver (a cut loses at most
    # the chunk being read).
    assert len(server.ranges) == 2 and server.ranges[1] is not None
    resumed_at = int(server.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert len(PAYLOAD) // 2 - CHUNK <= resumed_at <= len(PAYLOAD) // 2


def test_a_part_file_left_by_an_earlier_run_is_resumed(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    downloader = _downloader(tmp_path)
    downloader.models_dir.mkdir(parents=True)
    downloader.part(model).write_bytes(PAYLOAD[:1000])
    assert downloader.download(model, url=server.url).read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=1000-"]


def test_a_connection_that_keeps_breaking_says_so_and_keeps_the_bytes(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    server.cut_next = 99
    downloader = _downloader(tmp_path)
    with pytest.raises(DownloadError, match="kept breaking") as err:
        downloader.download(model, url=server.url)
    assert "goes on from there" in str(err.value)
    assert 0 < downloader.partial_bytes(model) < len(PAYLOAD)
    assert not downloader.installed(model)


def test_a_server_that_ignores_range_starts_over_instead_of_appending(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    server.ignore_range = True
    downloader = _downloader(tmp_path)
    downloader.models_dir.mkdir(parents=True)
    downloader.part(model).write_bytes(PAYLOAD[:1000])
    assert downloader.download(model, url=server.url).read_bytes() == PAYLOAD


def test_wrong_checksum_is_deleted_not_used(server: ModelServer, tmp_path: Path) -> None:
    # The pin says one sha256, the bytes have another, and the server does not advertise one.
    server.linked_etag = None
    model = _model(server, sha256="0" * 64)
    downloader = _downloader(tmp_path)
    with pytest.raises(DownloadError, match="not the expected file"):
        downloader.download(model, url=server.url)
    assert not downloader.target(model).exists() and not downloader.part(model).exists()


def test_a_linked_etag_that_differs_from_the_pin_stops_before_any_byte(server: ModelServer,
                                                                       tmp_path: Path) -> None:
    server.linked_etag = "f" * 64
    model = _model(server)
    downloader = _downloader(tmp_path)
    with pytest.raises(DownloadError, match=r"different tiny\.gguf"):
        downloader.download(model, url=server.url)
    assert server.ranges == []  # the redirect's headers were enough: no bytes were asked for
    assert not downloader.part(model).exists()


def test_404_says_the_file_moved(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        _downloader(tmp_path).download(model, url=server.missing_url)
    assert "GGUF file you already have" in str(err.value)


def test_a_full_disk_is_refused_before_downloading(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    asked: list[Path] = []

    def tiny_disk(path: Path) -> int:
        asked.append(path)
        return 1_000_000

    downloader = _downloader(tmp_path, free_space=tiny_disk)
    with pytest.raises(DownloadError, match="Not enough free disk space") as err:
        downloader.download(model, url=server.url)
    assert asked == [tmp_path / "models"]
    assert str(tmp_path / "models") in str(err.value) and "1 MB is free" in str(err.value)
    assert server.ranges == []


def test_free_space_counts_what_a_part_file_already_holds(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    downloader = _downloader(tmp_path, free_space=lambda _p: len(PAYLOAD) - 1000 + SPARE_BYTES)
    downloader.models_dir.mkdir(parents=True)
    downloader.part(model).write_bytes(PAYLOAD[:1000])
    assert downloader.download(model, url=server.url).read_bytes() == PAYLOAD


def test_cancel_stops_and_keeps_the_part_for_later(server: ModelServer, tmp_path: Path) -> None:
    model = _model(server)
    downloader = _downloader(tmp_path)
    cancel = threading.Event()
    server.pause.clear()  # the server holds the second half until the test has cancelled
    errors: list[BaseException] = []

    def run() -> None:
        try:
            downloader.download(model, cancel=cancel, url=server.url)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert server.body_started.wait(10)
    wait_until(lambda: downloader.partial_bytes(model) > 0, message="the first bytes on disk")
    cancel.set()  # while the server sends nothing: Cancel must not wait for the next byte
    thread.join(3)  # well before the server's own 10 s pause would end
    server.pause.set()
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DownloadCancelled)
    assert "kept" in str(errors[0])
    assert not downloader.installed(model)
    kept = downloader.partial_bytes(model)
    assert 0 < kept < len(PAYLOAD)
    # The next try asks only for the rest.
    assert downloader.download(model, url=server.url).read_bytes() == PAYLOAD
    assert server.ranges[-1] == f"bytes={kept}-"


def test_the_pin_points_at_one_commit() -> None:
    assert TINYLLAMA_CHAT.url == (
        "https://huggingface.co/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/"
        "52e7645ba7c309695bec7ac98f4f005b139cf465/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    assert len(TINYLLAMA_CHAT.sha256) == 64 and TINYLLAMA_CHAT.size_bytes == 668_788_096
