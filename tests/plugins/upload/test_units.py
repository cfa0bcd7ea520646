"""The upload plugin's pure functions, without an app: cleaning client filenames and
sending them back in a header, recognising content from its first bytes, and signing URLs.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from plugins.upload.filenames import clean_filename, content_disposition
from plugins.upload.models import FILENAME_MAX_LENGTH
from plugins.upload.signing import UrlSigner, url_signing_key
from plugins.upload.sniffing import matches_type, sniffable
from tests.plugins.upload.conftest import HTML, PDF, PNG

# -- clean_filename ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        pytest.param("../../etc/passwd", "passwd", id="posix-traversal"),
        pytest.param("..\\..\\win.ini", "win.ini", id="windows-traversal"),
        pytest.param("/absolute/path/photo.jpg", "photo.jpg", id="absolute-path"),
        pytest.param("C:\\Users\\ann\\report.pdf", "report.pdf", id="windows-drive"),
        pytest.param("a\x00b\x07c\x1f\x7fd.txt", "abcd.txt", id="control-chars"),
        pytest.param("evil\r\nX-Injected: 1.txt", "evilX-Injected: 1.txt", id="crlf"),
        pytest.param("   ", "file", id="only-spaces"),
        pytest.param("...", "file", id="only-dots"),
        pytest.param("../..", "file", id="only-traversal"),
        pytest.param("\x00\x01", "file", id="only-control"),
        pytest.param("  holiday   photo .png. ", "holiday photo .png", id="whitespace"),
        pytest.param("invoice\u202egnp.exe", "invoicegnp.exe", id="rtl-override"),
        pytest.param("zero\u200bwidth.txt", "zerowidth.txt", id="zero-width-space"),
    ],
)
def test_clean_filename(raw: str, cleaned: str) -> None:
    assert clean_filename(raw) == cleaned


def test_clean_filename_normalises_to_nfc() -> None:
    decomposed = "Cafe\u0301 re\u0301sume\u0301.txt"  # e + combining acute accent
    cleaned = clean_filename(decomposed)
    assert cleaned == "Caf\u00e9 r\u00e9sum\u00e9.txt"
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_filename(cleaned) == cleaned  # already clean: unchanged


def test_long_name_is_capped_keeping_its_extension() -> None:
    cleaned = clean_filename("a" * 300 + ".png")
    assert len(cleaned) == FILENAME_MAX_LENGTH == 255
    assert cleaned == "a" * 251 + ".png"


def test_long_name_without_extension_is_capped() -> None:
    cleaned = clean_filename("b" * 300)
    assert cleaned == "b" * FILENAME_MAX_LENGTH


def test_long_name_with_a_path_is_capped_after_taking_the_last_segment() -> None:
    assert clean_filename("dir/" * 100 + "c" * 300 + ".pdf") == "c" * 251 + ".pdf"


def test_name_at_the_limit_is_kept() -> None:
    name = "d" * (FILENAME_MAX_LENGTH - 4) + ".txt"
    assert clean_filename(name) == name


def test_long_multibyte_name_is_capped_in_characters() -> None:
    cleaned = clean_filename("\u00e9" * 300 + ".jpeg")
    assert cleaned == "\u00e9" * (FILENAME_MAX_LENGTH - 5) + ".jpeg"


# -- content_disposition -----------------------------------------------------------------------


def test_content_disposition_of_a_plain_name() -> None:
    assert content_disposition("report.pdf") == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )


def test_content_disposition_gives_an_ascii_fallback_and_the_exact_utf8_name() -> None:
    name = "r\u00e9sum\u00e9 \u65e5\u672c.pdf"
    header = content_disposition(name)
    assert header == (
        f"attachment; filename=\"resume .pdf\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    assert header.isascii()
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf" in header


@pytest.mark.parametrize(
    "name",
    [
        'say "hi".txt',
        "semi;colon.txt",
        "back\\slash.txt",
        'all"of;them\\.txt',
        'x"; filename="evil.exe',
    ],
)
def test_content_disposition_keeps_quotes_semicolons_and_backslashes_out_of_the_ascii_name(
    name: str,
) -> None:
    header = content_disposition(name)
    prefix = 'attachment; filename="'
    assert header.startswith(prefix)
    ascii_part, separator, extended = header[len(prefix) :].partition("\"; filename*=UTF-8''")
    assert separator, header
    assert ascii_part
    for character in '"\\;':
        assert character not in ascii_part, header
        assert character not in extended, header  # percent-encoded there
    assert extended == quote(name, safe="")
    assert header.count(";") == 2  # only the two parameter separators


def test_content_disposition_of_a_name_with_no_ascii_at_all() -> None:
    header = content_disposition("\u65e5\u672c")
    assert header == "attachment; filename=\"file\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"


# -- matches_type ------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
GIF87 = b"GIF87a" + bytes(32)
GIF89 = b"GIF89a" + bytes(32)
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(32)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
SVG_XML = b'\xef\xbb\xbf\n  <?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'
TEXT = "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u65e5\u672c\n".encode()


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        pytest.param("image/png", PNG, id="png"),
        pytest.param("image/jpeg", JPEG, id="jpeg"),
        pytest.param("image/gif", GIF87, id="gif87a"),
        pytest.param("image/gif", GIF89, id="gif89a"),
        pytest.param("image/webp", WEBP, id="webp"),
        pytest.param("application/pdf", PDF, id="pdf"),
        pytest.param("image/svg+xml", SVG, id="svg"),
        pytest.param("image/svg+xml", SVG_XML, id="svg-xml-bom"),
        pytest.param("text/plain", b"hello, world\n", id="ascii"),
        pytest.param("text/plain", TEXT, id="utf8"),
        pytest.param("text/plain", b"", id="empty-text"),
        pytest.param("text/plain", TEXT[:-3] + "\u65e5".encode()[:1], id="cut-1-of-3"),
        pytest.param("text/plain", TEXT[:-3] + "\u65e5".encode()[:2], id="cut-2-of-3"),
        pytest.param("text/plain", b"x" + "\U0001f600".encode()[:3], id="cut-3-of-4"),
        pytest.param("text/plain", b"caf" + "\u00e9".encode()[:1], id="cut-1-of-2"),
    ],
)
def test_content_matching_its_type_passes(content_type: str, head: bytes) -> None:
    assert sniffable(content_type)
    assert matches_type(content_type, head)


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        pytest.param("image/png", HTML, id="html-as-png"),
        pytest.param("image/jpeg", HTML, id="html-as-jpeg"),
        pytest.param("image/gif", HTML, id="html-as-gif"),
        pytest.param("image/webp", HTML, id="html-as-webp"),
        pytest.param("application/pdf", HTML, id="html-as-pdf"),
        pytest.param("image/svg+xml", HTML, id="html-as-svg"),
        pytest.param("image/png", JPEG, id="jpeg-as-png"),
        pytest.param("image/jpeg", PNG, id="png-as-jpeg"),
        pytest.param("image/gif", b"GIF88a" + bytes(8), id="bad-gif-version"),
        pytest.param("image/webp", b"RIFF\x24\x00\x00\x00WAVEfmt ", id="wav-as-webp"),
        pytest.param("image/png", PNG[:7], id="truncated-png-signature"),
        pytest.param("image/png", b"", id="empty-png"),
        pytest.param("application/pdf", b" %PDF-1.7", id="pdf-not-at-start"),
        pytest.param("image/svg+xml", b'<?xml version="1.0"?><html/>', id="xml-without-svg"),
        pytest.param("text/plain", b"hello\x00world", id="nul"),
        pytest.param("text/plain", PNG, id="png-as-text"),
        pytest.param("text/plain", "caf\u00e9 au lait".encode("latin-1"), id="latin-1"),
        pytest.param("text/plain", b"\xff\xfeh\x00i\x00", id="utf-16"),
    ],
)
def test_content_not_matching_its_type_fails(content_type: str, head: bytes) -> None:
    assert sniffable(content_type)
    assert not matches_type(content_type, head)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "image/x-unknown", "video/mp4", "text/csv"]
)
def test_types_without_a_signature_pass_any_content(content_type: str) -> None:
    assert not sniffable(content_type)
    for head in (HTML, PNG, b"", b"\x00\xff"):
        assert matches_type(content_type, head)


# -- UrlSigner ---------------------------------------------------------------------------------


class Fields(NamedTuple):
    """What a signed URL covers, in `UrlSigner.sign`'s order."""

    method: str = "PUT"
    upload_id: str = "upl_01J9ZQ4Y1T8W3K6M2N5P7R9S0V"
    key: str = "uploads/usr_01J9ZQ4Y1T8W3K6M2N5P7R9S0A/upl_01J9ZQ4Y1T8W3K6M2N5P7R9S0V"
    size: int = 1234
    content_type: str = "image/png"
    expires: int = 1_900_000_000


SIGNED = Fields()
CHANGED = Fields(  # a different value for every field
    method="GET",
    upload_id="upl_01J9ZQ4Y1T8W3K6M2N5P7R9S0W",
    key="uploads/usr_01J9ZQ4Y1T8W3K6M2N5P7R9S0A/upl_01J9ZQ4Y1T8W3K6M2N5P7R9S0W",
    size=1235,
    content_type="image/jpeg",
    expires=1_900_000_001,
)


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner(url_signing_key(SecretStr("a test secret that is long enough")))


def test_a_signature_verifies_for_the_same_fields(signer: UrlSigner) -> None:
    signature = signer.sign(*SIGNED)
    assert len(signature) == 64
    assert signature.isascii()
    assert signer.verify(signature, *SIGNED)
    assert signer.verify(signature, *Fields())  # equal fields, not the same objects
    assert signer.sign(*SIGNED) == signature  # deterministic


@pytest.mark.parametrize("field", Fields._fields)
def test_a_signature_fails_when_any_field_changes(signer: UrlSigner, field: str) -> None:
    signature = signer.sign(*SIGNED)
    changed = SIGNED._replace(**{field: getattr(CHANGED, field)})
    assert changed != SIGNED
    assert not signer.verify(signature, *changed)
    assert signer.sign(*changed) != signature


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("", id="empty"),
        pytest.param("0" * 64, id="zeros"),
        pytest.param("zz", id="short"),
        pytest.param("not a signature", id="words"),
        pytest.param("\u00e9" * 64, id="latin"),
        pytest.param("\U0001f600" * 16, id="emoji"),
        pytest.param("\udcff" * 64, id="lone-surrogate"),  # not even encodable as UTF-8
    ],
)
def test_garbage_signatures_fail(signer: UrlSigner, garbage: str) -> None:
    assert not signer.verify(garbage, *SIGNED)


def test_a_signature_in_another_case_or_length_fails(signer: UrlSigner) -> None:
    signature = signer.sign(*SIGNED)
    assert not signer.verify(signature.upper(), *SIGNED)
    assert not signer.verify(signature + "0", *SIGNED)
    assert not signer.verify(signature[:-1], *SIGNED)


def test_different_secret_keys_give_different_signatures() -> None:
    first = url_signing_key(SecretStr("first secret key, long enough for anyone"))
    second = url_signing_key(SecretStr("second secret key, long enough for anyone"))
    assert first != second
    assert url_signing_key(SecretStr("first secret key, long enough for anyone")) == first
    assert b"first secret key" not in first  # derived, never the secret itself
    one, other = UrlSigner(first), UrlSigner(second)
    signature = one.sign(*SIGNED)
    assert other.sign(*SIGNED) != signature
    assert not other.verify(signature, *SIGNED)
    assert one.verify(signature, *SIGNED)
