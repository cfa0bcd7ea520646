"""Does a file's content match its declared type? Decided from its first bytes.

Only types with a reliable signature are checked; for the others (`application/zip`,
an unknown `image/x-...`) any content passes. `text/plain` must be UTF-8 text without NUL
bytes. A mismatch means the client declared one type and sent another (say, HTML sent as a
PNG), which downloads must never serve under the declared type.
"""

from __future__ import annotations

from collections.abc import Callable

SNIFF_BYTES = 4096  # how much of the start of a file is read to decide


def _starts(*signatures: bytes) -> Callable[[bytes], bool]:
    return lambda head: any(head.startswith(signature) for signature in signatures)


def _webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _avif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis")


def _svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<svg", b"<?xml")) and b"<svg" in text


def _text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for cut in range(4):  # the sample may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/png": _starts(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": _starts(b"\xff\xd8\xff"),
    "image/gif": _starts(b"GIF87a", b"GIF89a"),
    "image/webp": _webp,
    "image/avif": _avif,
    "image/bmp": _starts(b"BM"),
    "image/tiff": _starts(b"II*\x00", b"MM\x00*"),
    "image/x-icon": _starts(b"\x00\x00\x01\x00"),
    "image/vnd.microsoft.icon": _starts(b"\x00\x00\x01\x00"),
    "image/svg+xml": _svg,
    "application/pdf": _starts(b"%PDF-"),
    "application/zip": _starts(b"PK\x03\x04", b"PK\x05\x06"),
    "application/gzip": _starts(b"\x1f\x8b"),
    "text/plain": _text,
}


def sniffable(content_type: str) -> bool:
    return content_type in SIGNATURES


def matches_type(content_type: str, head: bytes) -> bool:
    """Whether `head`, the first bytes of a file, fits `content_type`; True when we cannot tell."""
    check = SIGNATURES.get(content_type)
    return True if check is None else check(head)
