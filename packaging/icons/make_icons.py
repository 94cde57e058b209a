"""Draw the app icon with Qt and write it as PNG, Windows .ico and macOS .icns.

A chat bubble with three dots on a rounded violet square; no text, so no font is needed
and the result is the same on every machine. The outputs are committed; run this again
only to change the icon:

    QT_QPA_PLATFORM=offscreen python packaging/icons/make_icons.py
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QLinearGradient, QPainter, QPainterPath

HERE = Path(__file__).resolve().parent
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# .icns element types holding PNG data, by pixel size (ic10 is 512@2x).
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09", 1024: b"ic10"}


def draw(size: int) -> QImage:
    """The icon at `size` x `size` pixels, drawn from vectors (crisp at every size)."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    margin = s * 0.06
    gradient = QLinearGradient(QPointF(0, 0), QPointF(0, s))
    gradient.setColorAt(0.0, QColor("#7c5cff"))
    gradient.setColorAt(1.0, QColor("#4b2bd1"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(gradient)
    p.drawRoundedRect(QRectF(margin, margin, s - 2 * margin, s - 2 * margin), s * 0.2, s * 0.2)

    bubble = QPainterPath()
    body = QRectF(s * 0.2, s * 0.24, s * 0.6, s * 0.42)
    bubble.addRoundedRect(body, s * 0.12, s * 0.12)
    tail = QPainterPath()
    tail.moveTo(s * 0.32, s * 0.6)
    tail.lineTo(s * 0.26, s * 0.78)
    tail.lineTo(s * 0.46, s * 0.64)
    tail.closeSubpath()
    p.setBrush(QColor("#ffffff"))
    p.drawPath(bubble.united(tail))

    p.setBrush(QColor("#4b2bd1"))
    radius = s * 0.05
    for x in (0.36, 0.5, 0.64):
        p.drawEllipse(QPointF(s * x, s * 0.45), radius, radius)
    p.end()
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico(pngs: dict[int, bytes]) -> bytes:
    """A .ico of PNG-compressed images (Windows Vista and later read these)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, blobs = b"", b""
    for size, data in sorted(pngs.items()):
        dim = 0 if size >= 256 else size  # 0 means 256
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset + len(blobs))
        blobs += data
    return header + entries + blobs


def icns(pngs: dict[int, bytes]) -> bytes:
    """A .icns of PNG elements (macOS 10.7 and later)."""
    body = b"".join(ICNS_TYPES[size] + struct.pack(">I", 8 + len(data)) + data for size, data in sorted(pngs.items()))
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main(out: Path = HERE) -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    pngs = {size: png_bytes(draw(size)) for size in sorted(set(ICO_SIZES) | set(ICNS_TYPES))}
    (out / "tinyllama.png").write_bytes(pngs[256])
    (out / "tinyllama.ico").write_bytes(ico({s: pngs[s] for s in ICO_SIZES}))
    (out / "tinyllama.icns").write_bytes(icns({s: pngs[s] for s in ICNS_TYPES}))
    for name in ("tinyllama.png", "tinyllama.ico", "tinyllama.icns"):
        print(f"{out / name}: {(out / name).stat().st_size:,} bytes")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
