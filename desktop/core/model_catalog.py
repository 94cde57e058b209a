"""The models TinyLlama offers to download, each pinned to one file of one commit.

A download is used only when its size and sha256 match the entry here, so the pins are
the trust anchor: change them only together with the revision they were read from.

TinyLlama-1.1B-Chat v1.0, Q4_K_M (TheBloke's GGUF conversion): the size and sha256 below
could not be read from Hugging Face itself here (no network); they were taken from the
Hub's own figures as quoted by several independent projects that pin this file (size
668,788,096 bytes, the Hub's "669 MB"; the sha256 is what the Hub sends as the file's
X-Linked-ETag, not its plain ETag, which is a Xet content hash). The downloader checks
both against the server's X-Linked-ETag / X-Linked-Size before it writes a byte, so a
wrong pin fails loudly on the first real download rather than passing a wrong file.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

HUB = "https://huggingface.co"


class CatalogModel(NamedTuple):
    """One downloadable GGUF file, pinned by repository, commit, name, size and sha256."""

    key: str
    title: str
    repository: str
    revision: str  # a commit id: `main` could move under the pinned sha256
    file_name: str
    size_bytes: int
    sha256: str
    license: str
    context_length: int
    summary: str
    hub: str = HUB  # tests point it at a loopback server

    @property
    def url(self) -> str:
        """The Hub's download address of this exact commit's file."""
        return f"{self.hub}/{self.repository}/resolve/{self.revision}/{quote(self.file_name)}"

    @property
    def page(self) -> str:
        """Where a person can read about the model (its card on the Hub)."""
        return f"{self.hub}/{self.repository}"


TINYLLAMA_CHAT = CatalogModel(
    key="tinyllama-1.1b-chat-v1.0-q4_k_m",
    title="TinyLlama-1.1B-Chat",
    repository="TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
    revision="52e7645ba7c309695bec7ac98f4f005b139cf465",
    file_name="tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
    size_bytes=668_788_096,
    sha256="9fecc3b3cd76bba89d504f29b616eedf7da85b96540e490ca5824d3f7d2776a0",
    license="Apache-2.0",
    context_length=2048,
    summary="A small chat model (1.1 billion parameters, 4-bit) that runs on this computer's CPU.",
)

CATALOG: dict[str, CatalogModel] = {TINYLLAMA_CHAT.key: TINYLLAMA_CHAT}
DEFAULT_MODEL = TINYLLAMA_CHAT


def human_size(n: float) -> str:
    """Bytes as a person reads them (decimal units, as disks and the Hub count): '669 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB", "MB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """An ETA as a person reads it: '45 s', '3 min 20 s', '1 h 5 min'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
