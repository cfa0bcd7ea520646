"""Client filenames: metadata only, made safe to store and to send back in a header.

A filename never becomes part of a storage key or a path. It is cleaned so that it cannot
name a folder (`../../etc/passwd` becomes `passwd`), carry control characters or break a
header, and it is capped in length while keeping its extension.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from plugins.upload.models import FILENAME_MAX_LENGTH

_FALLBACK = "file"


def clean_filename(raw: str) -> str:
    """The last path segment of `raw`, NFC-normalised, without control or format characters,
    trimmed of spaces and dots at the ends, at most FILENAME_MAX_LENGTH characters."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split())  # any run of whitespace becomes one space
    name = name.strip(" .")
    if not name:
        return _FALLBACK
    if len(name) > FILENAME_MAX_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 16:
            name = stem[: FILENAME_MAX_LENGTH - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            name = name[:FILENAME_MAX_LENGTH].rstrip(" .")
    return name or _FALLBACK


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266/8187)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(ch for ch in ascii_name if ch not in '"\\;' and ch.isprintable())
    ascii_name = ascii_name.strip(" .") or _FALLBACK
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
