"""API keys: issued once in clear, stored as SHA-256 hashes, resolved to who is calling."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from arv.db.models import ApiKey, Company

KEY_PREFIX = "arv_"


def hash_key(key: str) -> str:
    # Keys are 32 random bytes, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, company_id: int | None = None, admin: bool = False) -> str:
    """A new key for one company, or an admin key; the clear key is returned once, never stored."""
    if admin == (company_id is not None):
        raise ValueError("a key is either an admin key or a company's key")
    if company_id is not None and session.get(Company, company_id) is None:
        raise LookupError(f"there is no company {company_id}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(key_hash=hash_key(key), prefix=key[:12], company_id=company_id, is_admin=admin))
    session.flush()
    return key


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator (admin) or one company."""

    is_admin: bool
    company_id: int | None

    def may_act_for(self, company_id: int) -> bool:
        return self.is_admin or self.company_id == company_id


def resolve_key(session: Session, key: str) -> Principal | None:
    row = session.execute(
        select(ApiKey.is_admin, ApiKey.company_id).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(is_admin=row.is_admin, company_id=row.company_id)
