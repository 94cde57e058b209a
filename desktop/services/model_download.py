"""Download a catalog model into the models folder: resumable, checked, atomic.

Bytes go into `<file>.part` with HTTP Range, so a cut connection (or a Cancel, or a quit)
loses nothing: the next attempt asks only for the rest. Before the first byte: enough free
disk space, and the server's X-Linked-ETag / X-Linked-Size (the Hub sends the file's
sha256 and size there) must agree with the catalog's pins. After the last byte: size and
sha256 of the whole file; only then is it moved into place with one `os.replace`, so a
file under the model's own name is always a verified one.

Blocking and Qt-free: the view runs `download()` on a worker thread and passes a
`threading.Event` to cancel it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from desktop.core.errors import AppError
from desktop.core.model_catalog import CatalogModel, human_size

# A cut loses at most the chunk being read; 256 KiB keeps that small and the syscalls few.
CHUNK = 1 << 18
# A connection cut this often in one download is not a blip: say so instead of looping.
ATTEMPTS = 4
# Between attempts after a cut: long enough for a flapping Wi-Fi, short enough to feel live.
RETRY_WAIT_S = 1.0
# (connect, read): the Hub answers in well under a second; a read stalled this long is a cut.
TIMEOUT = (10.0, 30.0)
# Progress reports at most this often: a 100 MB/s disk would otherwise flood the UI thread.
REPORT_EVERY_S = 0.2
# Kept free beyond the file itself, so the download never fills the disk to the last byte.
SPARE_BYTES = 50_000_000

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(AppError):
    """The model could not be downloaded; the message says why and what to do."""

    title = "Download failed"


class DownloadCancelled(DownloadError):
    """The person pressed Cancel; what arrived is kept in the `.part` file."""

    title = "Download cancelled"


@dataclass(frozen=True)
class Progress:
    """Where a download stands: bytes so far (resumed ones included), speed over this
    attempt, and the time left at that speed (None until there is a speed)."""

    done: int
    total: int
    speed_bps: float
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def default_free_space(path: Path) -> int:
    """Free bytes on the disk that holds `path`."""
    return shutil.disk_usage(path).free


class ModelDownloader:
    """Downloads catalog models into `models_dir`.

    `free_space` and `clock` are injected for tests (a disk that is full, a steady clock);
    `session` is a requests.Session (a test may give one with its own adapters).
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        free_space: Callable[[Path], int] = default_free_space,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_wait_s: float = RETRY_WAIT_S,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.free_space = free_space
        self.session = session or requests.Session()
        self.clock = clock
        self.retry_wait_s = retry_wait_s

    def target(self, model: CatalogModel) -> Path:
        """Where the verified file lives."""
        return self.models_dir / model.file_name

    def part(self, model: CatalogModel) -> Path:
        return self.models_dir / (model.file_name + ".part")

    def installed(self, model: CatalogModel) -> bool:
        """The file is in place at its pinned size (only a verified download puts it there)."""
        try:
            return self.target(model).stat().st_size == model.size_bytes
        except OSError:
            return False

    def partial_bytes(self, model: CatalogModel) -> int:
        """Bytes an earlier, interrupted download left (the next one resumes from there)."""
        try:
            return self.part(model).stat().st_size
        except OSError:
            return 0

    def download(
        self,
        model: CatalogModel,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        url: str | None = None,
    ) -> Path:
        """Fetch `model` (from `url`, default its Hub address) and return the verified file.

        Raises DownloadCancelled when `cancel` is set, DownloadError with words otherwise.
        """
        cancel = cancel or threading.Event()
        report = on_progress or (lambda _p: None)
        if self.installed(model):
            return self.target(model)
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"TinyLlama cannot create the models folder {self.models_dir} ({exc.strerror}). "
                                "Pick another folder in Account → Model….") from None
        part = self.part(model)
        if self.partial_bytes(model) > model.size_bytes:
            part.unlink()  # longer than the file can be: not ours to resume
        self._check_space(model)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._fetch(model, url or model.url, part, report, cancel)
                break
            except _Cut as cut:
                if attempt >= ATTEMPTS:
                    raise DownloadError(
                        f"The connection to {cut.host} kept breaking ({cut.reason}). "
                        f"{human_size(self.partial_bytes(model))} are kept: try again later and the download "
                        "goes on from there.") from None
                if cancel.wait(self.retry_wait_s):
                    raise self._cancelled(model) from None
        return self._verify_and_place(model, part)

    # -- steps -------------------------------------------------------------------------

    def _check_space(self, model: CatalogModel) -> None:
        needed = model.size_bytes - self.partial_bytes(model) + SPARE_BYTES
        free = self.free_space(self.models_dir)
        if free < needed:
            raise DownloadError(
                f"Not enough free disk space for {model.title}: it needs {human_size(needed)} in "
                f"{self.models_dir}, and only {human_size(free)} is free. Free some space, or pick another "
                "folder for models in Account → Model….")

    def _fetch(self, model: CatalogModel, url: str, part: Path, report: Callable[[Progress], None],
               cancel: threading.Event) -> None:
        have = self.partial_bytes(model)
        if have == model.size_bytes:
            return  # all bytes arrived before; only the check is left
        headers = {"Range": f"bytes={have}-"} if have else {}
        host = requests.utils.urlparse(url).netloc or url
        try:
            resp = self._follow(model, url, headers)
        except requests.exceptions.RequestException as exc:
            raise _Cut(host, _reason(exc)) from None
        finished = threading.Event()
        # Cancel must act even while no byte arrives (a stalled server): close the answer
        # under the blocked read, which then fails at once.
        watcher = threading.Thread(target=_close_on_cancel, args=(resp, cancel, finished), daemon=True)
        watcher.start()
        try:
            self._receive(model, resp, url, part, have, report, cancel, host)
        except (requests.exceptions.RequestException, ValueError, AttributeError):
            if cancel.is_set():
                raise self._cancelled(model) from None
            raise
        finally:
            finished.set()
            watcher.join()

    def _receive(self, model: CatalogModel, resp: requests.Response, url: str, part: Path, have: int,
                 report: Callable[[Progress], None], cancel: threading.Event, host: str) -> None:
        with resp:
            self._check_answer(model, resp, url)
            if resp.status_code == 416:  # nothing left past `have`: the .part is whole (or wrong)
                return
            mode = "ab"
            if have and resp.status_code != 206:
                have, mode = 0, "wb"  # the server ignored Range: start over rather than append twice
            start, done = self.clock(), have
            last = start - REPORT_EVERY_S
            try:
                with open(part, mode) as out:
                    for chunk in resp.iter_content(CHUNK):
                        if cancel.is_set():
                            raise self._cancelled(model)
                        out.write(chunk)
                        done += len(chunk)
                        now = self.clock()
                        if now - last >= REPORT_EVERY_S or done >= model.size_bytes:
                            last = now
                            report(_progress(done, have, model.size_bytes, now - start))
                    out.flush()
                    os.fsync(out.fileno())
            except requests.exceptions.RequestException as exc:  # an OSError too: caught first
                raise _Cut(host, _reason(exc)) from None
            except OSError as exc:
                if cancel.is_set():  # the read under a closed answer failed: that was Cancel
                    raise self._cancelled(model) from None
                if exc.errno == errno.ENOSPC:
                    raise DownloadError(
                        f"The disk holding {self.models_dir} is full. Free some space and try again: the "
                        f"{human_size(self.partial_bytes(model))} downloaded so far are kept.") from None
                raise DownloadError(f"TinyLlama could not write {part} ({exc.strerror}).") from None
        if done < model.size_bytes:
            raise _Cut(host, "the server closed the connection early")

    def _follow(self, model: CatalogModel, url: str, headers: dict[str, str]) -> requests.Response:
        """GET `url`, following redirects by hand: the Hub's first answer (a redirect to its
        CDN) carries the linked sha256 and size, checked before any byte is asked for."""
        for _hop in range(10):
            resp = self.session.get(url, headers=headers, stream=True, timeout=TIMEOUT, allow_redirects=False)
            if not resp.is_redirect:
                return resp
            with resp:
                self._check_linked(model, resp)
                url = urljoin(resp.url, resp.headers["Location"])
        raise requests.exceptions.TooManyRedirects(url)

    def _check_answer(self, model: CatalogModel, resp: requests.Response, url: str) -> None:
        if resp.status_code == 404:
            raise DownloadError(
                f"{model.file_name} is no longer at {url} (HTTP 404). The model may have moved: update "
                "TinyLlama, or use a GGUF file you already have.")
        if resp.status_code in (401, 403):
            raise DownloadError(
                f"The server refused to send {model.file_name} (HTTP {resp.status_code}). A network proxy may "
                "be blocking it: try another network, or use a GGUF file you already have.")
        if resp.status_code >= 400 and resp.status_code != 416:
            raise _Cut(requests.utils.urlparse(url).netloc, f"HTTP {resp.status_code}")
        self._check_linked(model, resp)

    def _check_linked(self, model: CatalogModel, answer: requests.Response) -> None:
        """The Hub sends the file's sha256 as X-Linked-ETag (its plain ETag is another hash)
        and its size as X-Linked-Size: both must be the pinned ones."""
        linked = answer.headers.get("X-Linked-ETag", "").strip().removeprefix("W/").strip('"').lower()
        if _SHA256.match(linked) and linked != model.sha256:
            raise DownloadError(
                f"The server offers a different {model.file_name} than the one this version of TinyLlama "
                f"checks for (sha256 {linked[:12]}… instead of {model.sha256[:12]}…). Nothing was kept. "
                "Update TinyLlama, or use a GGUF file you already have.")
        size = answer.headers.get("X-Linked-Size", "")
        if size.isdigit() and int(size) != model.size_bytes:
            raise DownloadError(
                f"The server offers a {human_size(int(size))} {model.file_name}, not the "
                f"{human_size(model.size_bytes)} one this version of TinyLlama checks for. Update "
                "TinyLlama, or use a GGUF file you already have.")

    def _verify_and_place(self, model: CatalogModel, part: Path) -> Path:
        size = part.stat().st_size
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        if size != model.size_bytes or digest.hexdigest() != model.sha256:
            part.unlink()  # a wrong file must not be resumed either
            raise DownloadError(
                f"The downloaded {model.file_name} is not the expected file (size or sha256 differ), so it "
                "was deleted and not used. Try again; if it happens again, your network may alter downloads.")
        target = self.target(model)
        os.replace(part, target)  # atomic on one filesystem: the name only ever holds a checked file
        with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
            fd = os.open(self.models_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return target

    def _cancelled(self, model: CatalogModel) -> DownloadCancelled:
        kept = self.partial_bytes(model)
        return DownloadCancelled(
            f"Download cancelled. {human_size(kept)} are kept, so it goes on from there next time."
            if kept else "Download cancelled.")


class _Cut(Exception):
    """The connection broke (or never came up): worth another attempt with Range."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(reason)
        self.host, self.reason = host, reason


def _close_on_cancel(resp: requests.Response, cancel: threading.Event, finished: threading.Event) -> None:
    while not finished.wait(0.05):
        if cancel.is_set():
            # close() alone leaves a read blocked in recv() until the server sends again;
            # shutting the socket down wakes it. urllib3 keeps the socket private.
            with contextlib.suppress(Exception):
                sock = getattr(getattr(resp.raw, "_connection", None), "sock", None) \
                    or resp.raw._fp.fp.raw._sock
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                resp.close()
            return


def _reason(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "no data for a while"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the server closed the connection early"
    return "cannot connect"


def _progress(done: int, resumed_from: int, total: int, elapsed_s: float) -> Progress:
    speed = (done - resumed_from) / elapsed_s if elapsed_s > 0 else 0.0
    eta = (total - done) / speed if speed > 0 else None
    return Progress(done, total, speed, eta)
