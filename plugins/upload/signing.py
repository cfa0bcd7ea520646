"""Signed URLs for the `local` backend: who holds one may upload or download one object.

The signature is an HMAC-SHA256, keyed from `COURTYARD_SECRET_KEY`, over the method, the
upload id, the object key, the exact size, the content type and the expiry, so changing any
of them (or the URL's `expires`) invalidates it. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import SecretStr

_LABEL = b"courtyard.upload.signed-url.v1"


def url_signing_key(secret_key: SecretStr) -> bytes:
    """A key for upload URLs only, derived from the app secret (never the secret itself)."""
    return hmac.new(secret_key.get_secret_value().encode(), _LABEL, hashlib.sha256).digest()


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(
        self, method: str, upload_id: str, key: str, size: int, content_type: str, expires: int
    ) -> str:
        message = "\n".join([method, upload_id, key, str(size), content_type, str(expires)])
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def verify(
        self,
        signature: str,
        method: str,
        upload_id: str,
        key: str,
        size: int,
        content_type: str,
        expires: int,
    ) -> bool:
        expected = self.sign(method, upload_id, key, size, content_type, expires)
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def now() -> int:
    return int(time.time())
