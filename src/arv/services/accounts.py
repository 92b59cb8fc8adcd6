"""Console accounts: people, their passwords, their signed-in sessions, one-time links, failed sign-ins.

What this module guarantees:
- No secret is stored in clear. Passwords are argon2id hashes; a session cookie's token and a
  one-time link's token are 32 random bytes stored as their SHA-256 (nothing to brute-force there).
  An account e-mail's job issues its link when it runs, so no clear token sits in the jobs table.
- A link works once: it is spent by a conditional UPDATE (unused and unexpired), so of two requests
  with the same link at once, one sets the password and the other is refused. Setting a password
  spends every other link of that person, ends all their sessions (a reset signs out everywhere)
  and lifts a sign-in lock on their e-mail.
- Failed sign-ins are counted per normalised e-mail, whether an account has it or not, and a wrong
  password costs the same argon2 verification either way: neither the answer, the lock nor the time
  tells whether an address has an account. Past `ARV_CONSOLE_SIGN_IN_MAX_FAILURES` failures the
  e-mail is locked for `ARV_CONSOLE_SIGN_IN_LOCK_S`, the right password included.
- Sessions end `ARV_CONSOLE_SESSION_TTL_S` after sign-in; `last_seen_at` is written at most once a
  minute, so reading a session is not a write per page.

Times that decide (expired, locked, stale) come from the database's clock (`db_now`), like the jobs'.
Nothing here commits, except the account e-mail's job (its link must exist before its mail leaves).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import lru_cache
from urllib.parse import urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, Table, case, delete, exists, select, update
from sqlalchemy.orm import Session

from arv.config import Settings, get_settings
from arv.db.dialect import db_now, read_db_now, upsert
from arv.db.models import (
    AccountToken,
    Company,
    ConsoleSession,
    Job,
    LinkPurpose,
    SignInThrottle,
    User,
    UserRole,
)
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, TryLater, register
from arv.jobs.queues import Queue
from arv.mail_addresses import mailbox
from arv.services.auth import Principal
from arv.services.notify.email import EmailChannel
from arv.services.notify.errors import DeliveryRefused, OutcomeUnknown
from arv.services.notify.messages import DEFAULT_LANGUAGE, RenderedMessage, language_of, render
from arv.services.notify.ratelimit import RateLimiter, rate_limiter_for

# The console's page where a one-time link lands (the console's routes serve it).
SET_PASSWORD_PATH = "/console/set-password"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
# `ConsoleSession.last_seen_at` is exact to this many seconds: within it, a visit is not written.
LAST_SEEN_RESOLUTION_S = 60.0
# The wait before answering a sign-in doubles with each failure recorded, from
# `console_sign_in_delay_s`, up to this many times it.
SIGN_IN_DELAY_MAX_FACTOR = 8
# A reset mail is sent at most this often to one person, however often the form is sent.
RESET_MAIL_INTERVAL_S = 60.0

_throttles: Table = SignInThrottle.__table__  # type: ignore[assignment]
_users: Table = User.__table__  # type: ignore[assignment]


# ---- refusals -----------------------------------------------------------------------------------


class AccountError(Exception):
    """An account operation refused; `str(exc)` is a sentence a person can act on."""


class InvalidEmail(AccountError):
    """Not an e-mail address an SMTP server would take (or it holds control characters)."""


class AccountExists(AccountError):
    def __init__(self, email: str) -> None:
        super().__init__(f"there is already an account for {email}")


class WeakPassword(AccountError):
    """A password outside the rules: `MIN_PASSWORD_LENGTH` to `MAX_PASSWORD_LENGTH` characters and
    not the account's own e-mail address."""


class LinkInvalid(AccountError):
    def __init__(self) -> None:
        super().__init__("this link has expired or was already used; ask for a new one")


class SignInLocked(AccountError):
    """Too many failed sign-ins of one e-mail: refused until `until`, whatever the password."""

    def __init__(self, until: datetime) -> None:
        # Rounded up to the minute: at the moment the message names, the lock has ended.
        shown = (until + timedelta(seconds=59, microseconds=999999)).replace(second=0, microsecond=0)
        super().__init__(
            "too many failed sign-ins with this e-mail; try again after "
            f"{shown.strftime('%Y-%m-%d %H:%M')} UTC, or set a new password through a reset link"
        )
        self.until = until


WRONG_CREDENTIALS = "wrong e-mail or password"


# ---- addresses and passwords --------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """`email` stripped and lower-cased, as accounts store it; InvalidEmail if it is no address."""
    address = email.strip().lower()
    try:
        return mailbox(address)
    except ValueError as exc:
        raise InvalidEmail(f"that is not an e-mail address: {exc}") from None


def _hasher() -> PasswordHasher:
    settings = get_settings()
    return _hasher_of(settings.console_password_memory_kib, settings.console_password_passes)


@lru_cache
def _hasher_of(memory_kib: int, passes: int) -> PasswordHasher:
    return PasswordHasher(time_cost=passes, memory_cost=memory_kib, parallelism=4)


@lru_cache
def _dummy_hash_of(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(32))


def _dummy_hash() -> str:
    """A hash of nothing anyone knows, with the same parameters: a sign-in of an unknown e-mail
    verifies against it, so it takes as long as one of a known e-mail."""
    return _dummy_hash_of(_hasher())


def hash_password(password: str) -> str:
    """The argon2id hash of `password` (salt and parameters inside the string), at the cost set by
    `ARV_CONSOLE_PASSWORD_MEMORY_KIB` and `ARV_CONSOLE_PASSWORD_PASSES`."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` is the one `password_hash` was made from; False for a damaged hash."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(password: str, *, email: str) -> None:
    """Raise WeakPassword, saying what to change, unless `password` may be the password of `email`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        raise WeakPassword("a password must not be your e-mail address")


def _digest(token: str) -> str:
    # Tokens are 32 random bytes, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


# ---- users --------------------------------------------------------------------------------------


def create_user(session: Session, *, email: str, company_id: int | None, role: UserRole) -> User:
    """A new user without a password (flushed, not committed): the operator's (`company_id` None,
    role OPERATOR) or a company's owner or member. Raises InvalidEmail, AccountExists, and
    LookupError for a company that does not exist."""
    address = normalise_email(email)
    role = UserRole(role)
    if (role == UserRole.OPERATOR) != (company_id is None):
        raise ValueError("an operator belongs to no company; a company's user is its owner or a member")
    if company_id is not None and session.get(Company, company_id) is None:
        raise LookupError(f"there is no company {company_id}")
    # One statement that the unique key decides, so of two creations of one address at once one
    # is refused; no savepoint (its release would publish the caller's pending job wake-ups early).
    user_id = session.scalar(
        upsert(session, _users)
        .values(email=address, company_id=company_id, role=role, created_at=db_now())
        .on_conflict_do_nothing(index_elements=[_users.c.email])
        .returning(_users.c.id)
    )
    if user_id is None:
        raise AccountExists(address)
    user = session.get(User, user_id)
    assert user is not None  # inserted just now, in this transaction
    return user


def list_users(session: Session, principal: Principal | None) -> list[User]:
    """The operator (and the CLI, `principal` None) sees every user, the operator's first; a company
    its own users. Ordered by company, then e-mail."""
    query = select(User).order_by(User.company_id.asc().nulls_first(), User.email)
    if principal is not None and not principal.is_admin:
        query = query.where(User.company_id == principal.company_id)
    return list(session.scalars(query))


def principal_for(user: User) -> Principal:
    """Who a console user acts as, for the services the API uses too: the operator, or their company."""
    return Principal(is_admin=user.role == UserRole.OPERATOR, company_id=user.company_id, key_id=None)


# ---- one-time links -----------------------------------------------------------------------------


def _link_ttl_s(purpose: LinkPurpose, settings: Settings) -> float:
    return settings.console_invite_ttl_s if purpose == LinkPurpose.INVITE else settings.console_reset_ttl_s


def _issue(session: Session, user: User, purpose: str, settings: Settings) -> tuple[AccountToken, str]:
    link_purpose = LinkPurpose(purpose)
    token = secrets.token_urlsafe(32)
    now = read_db_now(session)
    record = AccountToken(
        token_hash=_digest(token),
        user_id=user.id,
        purpose=link_purpose,
        created_at=now,
        expires_at=now + timedelta(seconds=_link_ttl_s(link_purpose, settings)),
    )
    session.add(record)
    session.flush()
    return record, f"{settings.api_base_url}{SET_PASSWORD_PATH}?{urlencode({'token': token})}"


def issue_link(session: Session, user: User, *, purpose: str, settings: Settings) -> str:
    """A new one-time link (URL) for `user` to set a password, `purpose` "invite" or "reset" (their
    lifetimes are `ARV_CONSOLE_INVITE_TTL_S` and `ARV_CONSOLE_RESET_TTL_S`); flushed, not committed.
    The clear token exists only in the URL returned."""
    return _issue(session, user, purpose, settings)[1]


def _live_link(token_hash: str) -> ColumnElement[bool]:
    return (
        (AccountToken.token_hash == token_hash)
        & AccountToken.used_at.is_(None)
        & (AccountToken.expires_at > db_now())
    )


def link_user(session: Session, token: str) -> User:
    """The user a live link is for (to show the set-password form), else LinkInvalid."""
    user = session.scalar(
        select(User).join(AccountToken, AccountToken.user_id == User.id).where(_live_link(_digest(token)))
    )
    if user is None:
        raise LinkInvalid()
    return user


def set_password(session: Session, token: str, password: str) -> User:
    """Set the password of the user a live link is for, spending the link (flushed, not committed).

    Raises LinkInvalid (unknown, used or expired link) or WeakPassword. The link is spent by a
    conditional update, so two requests with one link at once set one password and refuse the other.
    The user's other links are spent too, every session of theirs ends, and a sign-in lock on their
    e-mail is lifted (the link reached their mailbox).
    """
    token_hash = _digest(token)
    user = link_user(session, token)
    check_password_rules(password, email=user.email)
    # Hashed before the update below: its row lock is held until the commit, not over argon2's work.
    password_hash = hash_password(password)
    spent = session.execute(
        update(AccountToken)
        .where(_live_link(token_hash))
        .values(used_at=db_now())
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkInvalid()
    session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.used_at.is_(None))
        .values(used_at=db_now())
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(ConsoleSession)
        .where(ConsoleSession.user_id == user.id)
        .execution_options(synchronize_session=False)
    )
    # The link came to their mailbox: whoever locked the e-mail with wrong passwords, it is theirs.
    session.execute(delete(SignInThrottle).where(SignInThrottle.email == user.email))
    user.password_hash = password_hash
    session.flush()
    return user


# ---- signing in ---------------------------------------------------------------------------------


def _throttle_fresh(lock_s: float) -> ColumnElement[bool]:
    """The throttle row's last failure is recent enough to count the next one on top of it."""
    return _throttles.c.last_failed_at >= db_now(-lock_s)


def _locked_until(session: Session, address: str) -> datetime | None:
    return session.scalar(
        select(SignInThrottle.locked_until).where(
            SignInThrottle.email == address, SignInThrottle.locked_until > db_now()
        )
    )


def _record_failure(session: Session, address: str, settings: Settings) -> datetime | None:
    """Count a failed sign-in of `address` in one statement (concurrent failures all count); returns
    the lock it brought about, if any.

    Failures count on while each comes within `lock_s` of the previous one; an older count starts
    again at one. The one that reaches the maximum locks until `lock_s` after it.
    """
    lock_s, limit = settings.console_sign_in_lock_s, settings.console_sign_in_max_failures
    counted = case((_throttle_fresh(lock_s), _throttles.c.failures + 1), else_=1)
    statement = (
        upsert(session, _throttles)
        .values(
            email=address,
            failures=1,
            last_failed_at=db_now(),
            locked_until=db_now(lock_s) if limit <= 1 else None,
        )
        .on_conflict_do_update(
            index_elements=[_throttles.c.email],
            set_={
                "failures": counted,
                "last_failed_at": db_now(),
                # SET reads the row as it was, so `counted` is the new count here too.
                "locked_until": case((counted >= limit, db_now(lock_s)), else_=None),
            },
        )
        .returning(_throttles.c.locked_until)
    )
    return session.execute(statement).scalar_one()  # type: ignore[no-any-return]


def sign_in(session: Session, email: str, password: str, settings: Settings) -> User:
    """The user whose e-mail and password these are; notes the sign-in (flushed, not committed).

    Raises SignInLocked while the e-mail is locked (even with the right password; also when this
    failure locks it), AccountError("wrong e-mail or password") for any other failure: an unknown
    e-mail, a wrong password, an account whose password was never set. A failure is written to
    `session` and raised: the caller must commit the session after calling this whether it raised or
    not, or the count of failures is lost with the request. A success clears the count.
    """
    try:
        address = normalise_email(email)
    except InvalidEmail:
        # No account can have it, so there is nothing to count; the time spent is the same.
        verify_password(_dummy_hash(), password)
        raise AccountError(WRONG_CREDENTIALS) from None
    locked_until = _locked_until(session, address)
    if locked_until is not None:
        raise SignInLocked(locked_until)
    user = session.scalar(select(User).where(User.email == address))
    stored = user.password_hash if user is not None else None
    matches = verify_password(stored or _dummy_hash(), password)
    if user is None or stored is None or not matches:
        locked_until = _record_failure(session, address, settings)
        if locked_until is not None:
            raise SignInLocked(locked_until)
        raise AccountError(WRONG_CREDENTIALS)
    session.execute(delete(SignInThrottle).where(SignInThrottle.email == address))
    if _hasher().check_needs_rehash(stored):
        # Hashed with older parameters than the ones now in force: upgraded while the password is known.
        user.password_hash = hash_password(password)
    user.last_sign_in_at = read_db_now(session)
    session.flush()
    return user


def sign_in_delay_s(session: Session, email: str, *, settings: Settings | None = None) -> float:
    """Seconds the console should wait before answering a sign-in of `email`: 0 while no failure is
    counted, then `console_sign_in_delay_s` doubling with each failure counted, up to
    `SIGN_IN_DELAY_MAX_FACTOR` times it. Failed sign-ins are slowed, and the wait is the same for
    every e-mail with as many failures, known or not."""
    settings = settings or get_settings()
    lock_s = settings.console_sign_in_lock_s
    try:
        address = normalise_email(email)
    except InvalidEmail:
        return 0.0
    failures = session.scalar(
        select(SignInThrottle.failures).where(SignInThrottle.email == address, _throttle_fresh(lock_s))
    )
    if not failures:
        return 0.0
    base = settings.console_sign_in_delay_s
    return float(min(base * SIGN_IN_DELAY_MAX_FACTOR, base * 2 ** (failures - 1)))


# ---- sessions -----------------------------------------------------------------------------------


def start_session(session: Session, user: User, settings: Settings) -> tuple[str, ConsoleSession]:
    """A new signed-in session of `user`: the token for the cookie (its only clear copy) and the row,
    whose `csrf_token` the console's forms carry. Ends `ARV_CONSOLE_SESSION_TTL_S` from now; the
    user's sessions that already ended are deleted. Flushed, not committed."""
    session.execute(
        delete(ConsoleSession)
        .where(ConsoleSession.user_id == user.id, ConsoleSession.expires_at <= db_now())
        .execution_options(synchronize_session=False)
    )
    token = secrets.token_urlsafe(32)
    now = read_db_now(session)
    record = ConsoleSession(
        id=_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_hex(32),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.console_session_ttl_s),
        last_seen_at=now,
    )
    session.add(record)
    session.flush()
    return token, record


def _seen_long_ago() -> ColumnElement[bool]:
    return ConsoleSession.last_seen_at < db_now(-LAST_SEEN_RESOLUTION_S)


def resolve_session(session: Session, token: str | None) -> tuple[User, ConsoleSession] | None:
    """The user and session a cookie's token stands for; None for no token, an unknown or an ended
    session. Notes the visit at most once per `LAST_SEEN_RESOLUTION_S`, in `session`'s transaction."""
    if not token:
        return None
    session_id = _digest(token)
    row = session.execute(
        select(User, ConsoleSession, _seen_long_ago().label("stale"))
        .join(ConsoleSession, ConsoleSession.user_id == User.id)
        .where(ConsoleSession.id == session_id, ConsoleSession.expires_at > db_now())
    ).first()
    if row is None:
        return None
    user, console_session, stale = row
    if stale:
        # Conditional, so that concurrent pages of one session write it once between them.
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == session_id, _seen_long_ago())
            .values(last_seen_at=db_now())
            .execution_options(synchronize_session=False)
        )
        session.refresh(console_session, ["last_seen_at"])
    return user, console_session


def end_session(session: Session, token: str | None) -> None:
    """Sign out: the session of this cookie's token ends (nothing happens for no or an unknown token)."""
    if token:
        session.execute(
            delete(ConsoleSession)
            .where(ConsoleSession.id == _digest(token))
            .execution_options(synchronize_session=False)
        )


# ---- invitations and resets ---------------------------------------------------------------------


def invite_user(
    session: Session, *, email: str, company_id: int | None, role: UserRole, settings: Settings
) -> tuple[User, str | None]:
    """Create a user and invite them (in the caller's transaction): `create_user`, then
    `send_invitation`. Raises what `create_user` raises."""
    user = create_user(session, email=email, company_id=company_id, role=role)
    return user, send_invitation(session, user, settings)


def send_invitation(session: Session, user: User, settings: Settings) -> str | None:
    """Invite `user` (again) to set their password. With e-mail configured (`ARV_SMTP_HOST`), a job
    mails them a new link once the caller's transaction commits, and None is returned; without, the
    link is returned for the person who invited to hand over (`make run` has no mail server)."""
    if settings.smtp_host:
        _queue_account_email(session, user, LinkPurpose.INVITE)
        return None
    return issue_link(session, user, purpose=LinkPurpose.INVITE, settings=settings)


def request_password_reset(session: Session, email: str, settings: Settings) -> None:
    """Queue the mail with a reset link when `email` has an account and e-mail is configured; do
    nothing otherwise, and say nothing either way: the answer must not tell whether an account exists."""
    if not settings.smtp_host:
        return
    try:
        address = normalise_email(email)
    except InvalidEmail:
        return
    user = session.scalar(select(User).where(User.email == address))
    if user is not None:
        _queue_account_email(session, user, LinkPurpose.RESET)


def _queue_account_email(session: Session, user: User, purpose: LinkPurpose) -> str:
    return store.enqueue(
        session, ACCOUNT_EMAIL, {"user_id": user.id, "purpose": str(purpose)}, company_id=user.company_id
    )


class AccountMailChannel(EmailChannel):
    """The e-mail channel for account mails: the same SMTP dialogue and rate, with headers that name
    the account link the mail carries instead of a notification's delivery."""

    def build(self, recipient: str, message: RenderedMessage, *, delivery_id: int) -> EmailMessage:
        mail = super().build(recipient, message, delivery_id=delivery_id)
        mail.replace_header("Message-ID", mail["Message-ID"].replace("arv-delivery-", "arv-account-link-"))
        del mail["X-ARV-Delivery"]
        mail["X-ARV-Account-Link"] = str(delivery_id)
        return mail


def _lifetime_words(seconds: float) -> dict[str, int | None]:
    """A link's lifetime in the largest whole unit the templates say: days, hours, else minutes."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return {"valid_days": int(seconds // 86400), "valid_hours": None, "valid_minutes": None}
    if seconds >= 3600 and seconds % 3600 == 0:
        return {"valid_days": None, "valid_hours": int(seconds // 3600), "valid_minutes": None}
    return {"valid_days": None, "valid_hours": None, "valid_minutes": max(1, math.ceil(seconds / 60))}


def _reset_mailed_lately(session: Session, user_id: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    AccountToken.user_id == user_id,
                    AccountToken.purpose == LinkPurpose.RESET,
                    AccountToken.created_at > db_now(-RESET_MAIL_INTERVAL_S),
                )
            )
        )
    )


def send_account_email(
    session: Session,
    job: Job,
    *,
    settings: Settings,
    limiter: RateLimiter,
    sleep: Callable[[float], None] = time.sleep,
) -> JobOutcome:
    """Mail the user `job` names a new link of the job's purpose, in their company's language
    (English for the operator's users).

    The link is issued here, when the job runs, and committed before the mail leaves, so the link
    works when it arrives. A retry after a transient failure issues another link; one mailed twice
    (a worker that died after sending) is harmless, each link working once. A reset is mailed at most
    once per `RESET_MAIL_INTERVAL_S` to one person. Raises ChannelUnavailable (retried),
    DeliveryRefused and OutcomeUnknown (final), TryLater while the mail server's rate is used up.
    """
    user_id, purpose = int(job.args["user_id"]), LinkPurpose(job.args["purpose"])
    user = session.get(User, user_id)
    if user is None:
        return JobOutcome({"sent": False, "note": "the user was deleted"})
    if purpose == LinkPurpose.RESET and _reset_mailed_lately(session, user_id):
        return JobOutcome({"sent": False, "note": "a reset link was mailed to this user within the minute"})
    company = session.get(Company, user.company_id) if user.company_id is not None else None
    recipient = user.email
    session.commit()  # end the read transaction: no database lock is held while waiting

    channel = AccountMailChannel(settings)
    limits = channel.limits(recipient)
    reservation = limiter.reserve(limits, max_wait_s=settings.notification_max_rate_wait_s)
    if not reservation.granted:
        raise TryLater(
            f"rate limit: next e-mail slot in {reservation.wait_s:.2f} s",
            delay_s=reservation.wait_s,
            counts_as_attempt=False,
        )
    try:
        if reservation.wait_s > 0:
            sleep(reservation.wait_s)
        record, link = _issue(session, user, purpose, settings)
        message = render(
            f"account_{purpose}",
            language_of(company) if company is not None else DEFAULT_LANGUAGE,
            {
                "company_name": company.name if company is not None else None,
                "email": recipient,
                "link": link,
                **_lifetime_words(_link_ttl_s(purpose, settings)),
            },
        )
        session.commit()  # the link exists before the mail that carries it leaves
        channel.send(recipient, message, delivery_id=record.id)
    finally:
        limiter.release(limits, reservation)
    return JobOutcome({"sent": True, "user_id": user_id, "purpose": str(purpose), "link_id": record.id})


def _send_account_email_job(session: Session, job: Job) -> JobOutcome:
    settings = get_settings()
    return send_account_email(session, job, settings=settings, limiter=rate_limiter_for(settings))


ACCOUNT_EMAIL = register(
    JobKind(
        name="send_account_email",
        queue=Queue.NOTIFICATIONS,
        run=_send_account_email_job,
        permanent_errors=(DeliveryRefused, OutcomeUnknown),
    )
)


# ---- housekeeping -------------------------------------------------------------------------------


def prune_console_accounts(session: Session, settings: Settings) -> dict[str, int]:
    """Delete what can never count again: sessions past their end, links used or expired, and the
    failure counts of e-mails neither locked nor within the lock time of their last failure. Three
    set-based DELETEs on the database's clock; running it twice deletes nothing the second time."""
    now = db_now()
    sessions = session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    links = session.execute(
        delete(AccountToken).where((AccountToken.used_at.is_not(None)) | (AccountToken.expires_at < now))
    )
    throttles = session.execute(
        delete(SignInThrottle).where(
            ~_throttle_fresh(settings.console_sign_in_lock_s),
            SignInThrottle.locked_until.is_(None) | (SignInThrottle.locked_until < now),
        )
    )
    return {
        "sessions_deleted": sessions.rowcount,  # type: ignore[attr-defined]
        "links_deleted": links.rowcount,  # type: ignore[attr-defined]
        "sign_in_failures_deleted": throttles.rowcount,  # type: ignore[attr-defined]
    }
