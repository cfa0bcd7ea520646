"""An operator's admin account that signs in at once (`courtyard auth create-admin`).

The account is made by the `user` plugin's rules (its `UserDirectory`) and given its
password by the same policy and argon2id hashing as a sign-up (`AuthService`'s); verified,
since the operator vouches for the address. One transaction: the admin exists with its
password, or not at all.
"""

from __future__ import annotations

from core.db import utcnow
from plugins.auth.repository import AuthRepository
from plugins.auth.service import AuthService
from plugins.user.api import User


async def check_new_admin(auth: AuthService, email: str, name: str) -> None:
    """Raise what creating the admin would raise (the email in use, an address or name the
    user plugin refuses), so the operator learns it before typing a password: the account
    is tried, by the user plugin's own rules, in a transaction that is rolled back."""
    async with auth.database.write_sessions() as session:
        await auth.directory(session=session).create(email, name, "admin")
        await session.rollback()


async def create_admin(auth: AuthService, email: str, name: str, password: str) -> User:
    """A new active admin with a verified email and this password (the policy's rules)."""
    auth.policy.check(password)
    password_hash = await auth.hasher.hash(password)  # no transaction open meanwhile
    async with auth.database.write_sessions() as session:
        users = auth.directory(session=session)
        created = await users.create(email, name, "admin")
        admin = await users.mark_email_verified(created.id)
        await AuthRepository(session).store_password(admin.id, password_hash, utcnow(), locked=None)
        await session.commit()
    return admin
