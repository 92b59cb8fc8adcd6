"""API keys: issued once in clear, stored as SHA-256 hashes, resolved to who is calling, revoked for good.

A key is looked up in the database on every request (no principal is cached), so a revoked key is
refused from the next request on. Its `last_used_at` is written at most once a minute: a request
whose key was used within the minute reads and writes nothing more, so authenticating is not a
write per request (on SQLite every write takes the one write lock).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from arv.db.dialect import db_now
from arv.db.models import ApiKey, Company
from arv.db.session import session_scope

KEY_PREFIX = "arv_"
# `last_used_at` is exact to this many seconds: within it, a key's use is not written again.
LAST_USED_RESOLUTION_S = 60.0


def hash_key(key: str) -> str:
    # Keys are 32 random bytes, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: its row, and the clear key, which exists only here and is never stored."""

    record: ApiKey
    key: str


def issue_key(
    session: Session, *, company_id: int | None = None, admin: bool = False, label: str | None = None
) -> IssuedKey:
    """A new key for one company, or an admin key (flushed, not committed)."""
    if admin == (company_id is not None):
        raise ValueError("a key is either an admin key or a company's key")
    if company_id is not None and session.get(Company, company_id) is None:
        raise LookupError(f"there is no company {company_id}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        key_hash=hash_key(key), prefix=key[:12], company_id=company_id, is_admin=admin, label=label
    )
    session.add(record)
    session.flush()
    return IssuedKey(record, key)


def create_key(
    session: Session, *, company_id: int | None = None, admin: bool = False, label: str | None = None
) -> str:
    """The clear key alone, for the CLI and scripts: see `issue_key`."""
    return issue_key(session, company_id=company_id, admin=admin, label=label).key


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator (admin) or one company, through the API key `key_id`, or through
    a console user's session (`key_id` None; arv.services.accounts.principal_for)."""

    is_admin: bool
    company_id: int | None
    key_id: int | None

    def may_act_for(self, company_id: int) -> bool:
        return self.is_admin or self.company_id == company_id


def _used_long_ago() -> ColumnElement[bool]:
    return or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < db_now(-LAST_USED_RESOLUTION_S))


def resolve_key(session: Session, key: str) -> Principal | None:
    """The caller a key stands for, or None for an unknown or revoked key; notes the key's use (at
    most once per `LAST_USED_RESOLUTION_S`, in `session`'s transaction)."""
    row = session.execute(
        select(ApiKey.id, ApiKey.is_admin, ApiKey.company_id, _used_long_ago().label("stale")).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    if row.stale:
        # Conditional, so that concurrent requests with the same key write it once between them.
        session.execute(
            update(ApiKey).where(ApiKey.id == row.id, _used_long_ago()).values(last_used_at=db_now())
        )
    return Principal(is_admin=row.is_admin, company_id=row.company_id, key_id=row.id)


def authenticate_key(key: str) -> Principal | None:
    """`resolve_key` in a short transaction of its own, committed at once: the note of use is kept
    whatever becomes of the request, and the request's own transaction is not lengthened by it."""
    with session_scope() as session:
        return resolve_key(session, key)


class KeyNotFound(LookupError):
    def __init__(self, key_id: int) -> None:
        super().__init__(f"there is no API key {key_id}")


class LastAdminKey(Exception):
    def __init__(self, key_id: int) -> None:
        super().__init__(
            f"API key {key_id} is the last admin key that is not revoked; revoking it would lock the "
            "operator out: create another first (`arv keys create --admin`), then revoke this one"
        )


def _visible_to(principal: Principal | None, record: ApiKey) -> bool:
    """The operator (or the CLI, `principal` None) sees every key; a company its own company's."""
    return principal is None or principal.is_admin or record.company_id == principal.company_id


def list_keys(
    session: Session,
    principal: Principal | None,
    *,
    company_id: int | None = None,
    before_id: int | None = None,
    limit: int | None = None,
) -> list[ApiKey]:
    """Keys newest first (ids grow with time), revoked ones included; `principal` None is the CLI."""
    query = select(ApiKey).order_by(ApiKey.id.desc())
    if principal is not None and not principal.is_admin:
        query = query.where(ApiKey.company_id == principal.company_id)
    elif company_id is not None:
        query = query.where(ApiKey.company_id == company_id)
    if before_id is not None:
        query = query.where(ApiKey.id < before_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def revoke_key(session: Session, principal: Principal | None, key_id: int) -> ApiKey:
    """Revoke a key for good (flushed, not committed). Revoking a revoked key changes nothing; a key
    may revoke itself; the last admin key that is not revoked may not be revoked (`LastAdminKey`)."""
    record = session.get(ApiKey, key_id)
    if record is None or not _visible_to(principal, record):
        raise KeyNotFound(key_id)
    if record.revoked_at is not None:
        return record
    if record.is_admin:
        # The unrevoked admin keys, locked (on PostgreSQL; SQLite's transactions take the write lock
        # at BEGIN): of two revocations at once, the second sees what the first left.
        live = session.scalars(
            select(ApiKey.id).where(ApiKey.is_admin.is_(True), ApiKey.revoked_at.is_(None)).with_for_update()
        ).all()
        if record.id not in live:  # revoked by someone else meanwhile
            session.refresh(record)
            return record
        if len(live) == 1:
            raise LastAdminKey(key_id)
    session.execute(update(ApiKey).where(ApiKey.id == record.id).values(revoked_at=db_now()))
    session.refresh(record)
    return record


def create_first_admin_key(session: Session) -> str | None:
    """A new admin key if the database has no admin key that is not revoked, else None (`arv run`)."""
    live = session.scalars(
        select(ApiKey.id).where(ApiKey.is_admin.is_(True), ApiKey.revoked_at.is_(None)).limit(1)
    ).first()
    if live is not None:
        return None
    return create_key(session, admin=True, label="made by the first `arv run`")
