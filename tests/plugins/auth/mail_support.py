"""Speaking to the `auth` plugin's mail-driven routes, and reading the tokens its mails
carry. The SMTP server is the `mail` plugin tests' (`tests.plugins.mail.smtp_support`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx

from tests.plugins.auth.conftest import AUTH, NEW_PASSWORD, AuthApp, bearer
from tests.plugins.mail.smtp_support import Delivered, MailServer

# new_opaque_token(): 32 random bytes, URL-safe base64 without padding.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
LINKED_TOKEN = re.compile(r"\?token=([^\s&]+)")


def token_in(mail: Delivered | str) -> str:
    """The token a mail (or its text) carries: from its link when it has one, else the line
    holding it."""
    text = mail.text if isinstance(mail, Delivered) else mail.replace("\r\n", "\n")
    linked = LINKED_TOKEN.search(text)
    if linked:
        return unquote(linked.group(1))
    tokens = [line.strip() for line in text.splitlines() if TOKEN.fullmatch(line.strip())]
    assert len(tokens) == 1, text
    return tokens[0]


# Speaking to the app's mail-driven routes

RESET_REQUEST = f"{AUTH}/password-reset/request"
RESET_CONFIRM = f"{AUTH}/password-reset/confirm"
VERIFY_REQUEST = f"{AUTH}/verify/request"
VERIFY_CONFIRM = f"{AUTH}/verify/confirm"
RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Confirm your email address"


async def request_reset(auth: AuthApp, email: str, **extra: Any) -> httpx.Response:
    return await auth.client.post(RESET_REQUEST, json={"email": email, **extra})


async def confirm_reset(
    auth: AuthApp, token: str, new_password: str = NEW_PASSWORD, **extra: Any
) -> httpx.Response:
    body = {"token": token, "new_password": new_password, **extra}
    return await auth.client.post(RESET_CONFIRM, json=body)


async def request_verification(auth: AuthApp, tokens: dict[str, Any] | str) -> httpx.Response:
    return await auth.client.post(VERIFY_REQUEST, headers=bearer(tokens))


async def confirm_verification(auth: AuthApp, token: str, **extra: Any) -> httpx.Response:
    return await auth.client.post(VERIFY_CONFIRM, json={"token": token, **extra})


def assert_accepted(response: httpx.Response, detail_start: str) -> None:
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body.keys() == {"detail"}, body
    assert body["detail"].startswith(detail_start), body


async def mailed_reset_token(auth: AuthApp, server: MailServer, email: str) -> str:
    """Ask for a reset of `email`'s password; the token of the one mail it brought."""
    before = len(server.to(email, RESET_SUBJECT))
    response = await request_reset(auth, email)
    assert_accepted(response, "If an account with that email exists")
    mails = server.to(email, RESET_SUBJECT)
    assert len(mails) == before + 1, [m["Subject"] for m in server.inbox]
    return token_in(mails[-1])


async def mailed_verification_token(
    auth: AuthApp, server: MailServer, tokens: dict[str, Any], email: str
) -> str:
    """Ask for a verification mail as the holder of `tokens`; the token it brought."""
    before = len(server.to(email, VERIFY_SUBJECT))
    response = await request_verification(auth, tokens)
    assert_accepted(response, "If your address is not verified yet")
    mails = server.to(email, VERIFY_SUBJECT)
    assert len(mails) == before + 1, [m["Subject"] for m in server.inbox]
    return token_in(mails[-1])
