"""Console accounts: argon2 passwords set through one-time links that work once and expire; sign-in
locked after too many failures (unknown e-mails alike) and slowed before that; sessions that resolve,
expire and end; `arv users create|list`; and the account e-mails through a real SMTP server."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from arv.config import get_settings
from arv.db.models import (
    AccountToken,
    Company,
    ConsoleSession,
    Job,
    JobStatus,
    LinkPurpose,
    SignInThrottle,
    User,
    UserRole,
    utcnow,
)
from arv.db.session import get_sessionmaker, session_scope
from arv.services import accounts
from arv.services.accounts import (
    AccountError,
    AccountExists,
    InvalidEmail,
    LinkInvalid,
    SignInLocked,
    WeakPassword,
)
from arv.services.auth import Principal
from tests.conftest import apply_env
from tests.support.jobs import run_job_here
from tests.support.mail_server import MailServer, smtp_server

SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"])
PASSWORD = "correct horse battery"
MAX_FAILURES = 3


@pytest.fixture
def env(arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test environment with a cheap argon2 cost (the default takes most of a second a hash on
    a busy machine) and a lock after three failures."""
    env = {
        **arv_env,
        "ARV_CONSOLE_PASSWORD_MEMORY_KIB": "256",
        "ARV_CONSOLE_PASSWORD_PASSES": "1",
        "ARV_CONSOLE_SIGN_IN_MAX_FAILURES": str(MAX_FAILURES),
    }
    apply_env(env, monkeypatch)
    return env


@pytest.fixture
def mail(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[MailServer]:
    """A real SMTP server on loopback, configured as the platform's mail server."""
    with smtp_server() as server:
        apply_env(with_mail_server(env, server), monkeypatch)
        yield server


def with_mail_server(env: dict[str, str], server: MailServer) -> dict[str, str]:
    return {
        **env,
        "ARV_SMTP_HOST": server.host,
        "ARV_SMTP_PORT": str(server.port),
        "ARV_SMTP_RATE_PER_S": "50",
    }


def make_company(name: str = "Sunny Prints", language: str = "en") -> int:
    with session_scope() as session:
        company = Company(name=name, language=language)
        session.add(company)
        session.flush()
        return company.id


def invite(email: str, company_id: int | None = None, role: UserRole = UserRole.MEMBER) -> str:
    """A new user and the invitation link `arv users create` would print."""
    with session_scope() as session:
        user = accounts.create_user(
            session,
            email=email,
            company_id=company_id,
            role=UserRole.OPERATOR if company_id is None else role,
        )
        return accounts.issue_link(session, user, purpose=LinkPurpose.INVITE, settings=get_settings())


def token_of(link: str) -> str:
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://testserver/console/set-password"
    return parse_qs(parts.query)["token"][0]


def set_password(token: str, password: str = PASSWORD) -> User:
    with session_scope() as session:
        return accounts.set_password(session, token, password)


def account(email: str) -> User:
    with session_scope() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        session.expunge(user)
        return user


def attempt(email: str, password: str) -> User | AccountError:
    """A sign-in as the console's route makes it: the session is committed whether it raised or not."""
    session = get_sessionmaker()()
    try:
        return accounts.sign_in(session, email, password, get_settings())
    except AccountError as exc:
        return exc
    finally:
        session.commit()
        session.close()


def delay(email: str) -> float:
    with session_scope() as session:
        return accounts.sign_in_delay_s(session, email)


def signed_up(email: str = "ann@sunny.example") -> User:
    """A company member who has set their password."""
    return set_password(token_of(invite(email, make_company())))


# ---- passwords and one-time links ---------------------------------------------------------------


@SQLITE
def test_passwords_are_stored_as_argon2id_hashes_that_verify(env: dict[str, str]) -> None:
    link = invite(" Ann@Sunny.Example ", make_company())
    assert account("ann@sunny.example").password_hash is None  # the address normalised, no password yet
    set_password(token_of(link))
    stored = account("ann@sunny.example").password_hash
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.verify_password(stored, PASSWORD)
    assert not accounts.verify_password(stored, PASSWORD + "!")
    assert not accounts.verify_password("not a hash", PASSWORD)
    signed_in = attempt("ANN@sunny.example", PASSWORD)
    assert isinstance(signed_in, User) and signed_in.last_sign_in_at is not None


@SQLITE
def test_a_link_sets_a_password_once_and_leaves_no_clear_token_behind(env: dict[str, str]) -> None:
    token = token_of(invite("ann@sunny.example", make_company()))
    with session_scope() as session:
        assert accounts.link_user(session, token).email == "ann@sunny.example"
        stored = [row.token_hash for row in session.scalars(select(AccountToken))]
    assert token not in stored and len(stored) == 1
    set_password(token)
    for use in (
        lambda: set_password(token, "another good password"),
        lambda: accounts.link_user(session, token),
    ):
        with session_scope() as session, pytest.raises(LinkInvalid, match="expired or was already used"):
            use()
    assert accounts.verify_password(account("ann@sunny.example").password_hash or "", PASSWORD)


@SQLITE
def test_an_expired_or_unknown_link_is_refused(env: dict[str, str]) -> None:
    token = token_of(invite("ann@sunny.example", make_company()))
    with session_scope() as session:
        session.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(LinkInvalid):
        set_password(token)
    with session_scope() as session, pytest.raises(LinkInvalid):
        accounts.link_user(session, "no-such-token")
    assert account("ann@sunny.example").password_hash is None


@SQLITE
def test_links_live_as_long_as_the_settings_say(env: dict[str, str]) -> None:
    invite("ann@sunny.example", make_company())
    with session_scope() as session:
        user = session.scalars(select(User)).one()
        accounts.issue_link(session, user, purpose=LinkPurpose.RESET, settings=get_settings())
        lifetimes = {
            row.purpose: (row.expires_at - row.created_at).total_seconds()
            for row in session.scalars(select(AccountToken))
        }
    assert lifetimes == {"invite": 7 * 86400, "reset": 3600}


@SQLITE
def test_a_weak_password_is_refused_with_what_to_change_and_the_link_still_works(env: dict[str, str]) -> None:
    token = token_of(invite("ann@sunny.example", make_company()))
    for password, reason in [
        ("short", "at least 10 characters"),
        ("x" * 257, "at most 256 characters"),
        ("Ann@Sunny.example", "not be your e-mail address"),
    ]:
        with pytest.raises(WeakPassword, match=reason):
            set_password(token, password)
    assert set_password(token).password_hash is not None


@SQLITE
def test_setting_a_password_ends_every_session_and_spends_the_other_links(env: dict[str, str]) -> None:
    user = signed_up()
    with session_scope() as session:
        cookies = [accounts.start_session(session, user, get_settings())[0] for _ in range(2)]
        reset = token_of(accounts.issue_link(session, user, purpose="reset", settings=get_settings()))
        older_reset = token_of(accounts.issue_link(session, user, purpose="reset", settings=get_settings()))
    set_password(reset, "a new good password")
    with session_scope() as session:
        assert [accounts.resolve_session(session, cookie) for cookie in cookies] == [None, None]
        assert session.scalars(select(ConsoleSession)).all() == []
    with pytest.raises(LinkInvalid):
        set_password(older_reset, "yet another password")
    assert isinstance(attempt(user.email, "a new good password"), User)


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_a_link_used_by_two_requests_at_once_sets_one_password(env: dict[str, str]) -> None:
    token = token_of(invite("ann@sunny.example", make_company()))
    first = get_sessionmaker()()
    accounts.set_password(first, token, "the first password")  # not committed: holds the link's row
    outcome: list[object] = []

    def second_request() -> None:
        with session_scope() as session:
            try:
                outcome.append(accounts.set_password(session, token, "the second password"))
            except LinkInvalid as exc:
                outcome.append(exc)

    second = threading.Thread(target=second_request)
    second.start()
    # The second request found the link live (the first has not committed) and now waits on its row.
    with session_scope() as session:
        for _ in range(200):
            waiting = session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            if waiting:
                break
            session.execute(text("SELECT pg_sleep(0.02)"))
        assert waiting, "the second request never waited for the first"
    first.commit()
    first.close()
    second.join(timeout=20)
    assert len(outcome) == 1 and isinstance(outcome[0], LinkInvalid)
    stored = account("ann@sunny.example").password_hash or ""
    assert accounts.verify_password(stored, "the first password")


# ---- signing in ---------------------------------------------------------------------------------


def move_throttle_back(email: str, seconds: float) -> None:
    """What `seconds` passing does to the e-mail's failures: their times move that far back."""
    with session_scope() as session:
        row = session.get(SignInThrottle, email)
        assert row is not None
        row.last_failed_at -= timedelta(seconds=seconds)
        if row.locked_until is not None:
            row.locked_until -= timedelta(seconds=seconds)


def test_sign_in_is_locked_after_too_many_wrong_passwords_even_with_the_right_one_until_the_lock_ends(
    env: dict[str, str],
) -> None:
    user = signed_up()
    for _ in range(MAX_FAILURES - 1):
        failed = attempt(user.email, "wrong password")
        assert type(failed) is AccountError and str(failed) == "wrong e-mail or password"
    locking = attempt(user.email, "wrong password")
    assert isinstance(locking, SignInLocked)
    assert timedelta(seconds=899) < locking.until - utcnow() <= timedelta(seconds=900)
    shown = re.search(r"try again after (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", str(locking))
    assert shown is not None
    named = datetime.strptime(shown[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert timedelta(0) <= named - locking.until < timedelta(minutes=1)  # the lock is over by then
    assert isinstance(attempt(user.email, PASSWORD), SignInLocked)  # the right password too

    move_throttle_back(user.email, 899)
    assert isinstance(attempt(user.email, PASSWORD), SignInLocked)
    move_throttle_back(user.email, 2)
    signed_in = attempt(user.email, PASSWORD)
    assert isinstance(signed_in, User) and signed_in.id == user.id
    with session_scope() as session:
        assert session.get(SignInThrottle, user.email) is None  # a success clears the count
    assert type(attempt(user.email, "wrong password")) is AccountError  # counting starts again


@SQLITE
def test_a_password_set_through_a_reset_link_lifts_the_lock(env: dict[str, str]) -> None:
    user = signed_up()
    for _ in range(MAX_FAILURES):
        attempt(user.email, "wrong password")
    assert isinstance(attempt(user.email, PASSWORD), SignInLocked)
    with session_scope() as session:
        reset = token_of(accounts.issue_link(session, user, purpose="reset", settings=get_settings()))
    set_password(reset, "a new good password")
    assert isinstance(attempt(user.email, "a new good password"), User)


@SQLITE
def test_failures_spread_further_apart_than_the_lock_time_do_not_add_up(env: dict[str, str]) -> None:
    user = signed_up()
    for _ in range(MAX_FAILURES + 2):
        assert type(attempt(user.email, "wrong password")) is AccountError
        move_throttle_back(user.email, 901)
    assert isinstance(attempt(user.email, PASSWORD), User)


@SQLITE
def test_unknown_emails_are_throttled_and_slowed_exactly_like_known_ones(env: dict[str, str]) -> None:
    known = signed_up("ann@sunny.example")
    answers: dict[str, list[tuple[str, str, float]]] = {}
    for email in (known.email, "nobody@sunny.example"):
        answers[email] = []
        for _ in range(MAX_FAILURES + 1):
            waited = delay(email)
            failed = attempt(email, "wrong password")
            assert isinstance(failed, AccountError)
            answers[email].append((type(failed).__name__, re.sub(r"\d", "N", str(failed)), waited))
    assert answers[known.email] == answers["nobody@sunny.example"]
    assert [waited for *_, waited in answers[known.email]] == [0.0, 0.5, 1.0, 2.0]
    assert [kind for kind, *_ in answers[known.email]] == ["AccountError", "AccountError"] + [
        "SignInLocked"
    ] * 2
    with session_scope() as session:
        assert session.get(SignInThrottle, "nobody@sunny.example") is not None


@SQLITE
def test_the_wait_before_answering_doubles_with_each_failure_up_to_four_seconds(env: dict[str, str]) -> None:
    with session_scope() as session:
        session.add(SignInThrottle(email="ann@sunny.example", failures=9, last_failed_at=utcnow()))
    assert delay("Ann@sunny.example") == 4.0
    move_throttle_back("ann@sunny.example", 901)
    assert delay("ann@sunny.example") == 0.0  # failures older than the lock time are forgotten
    assert delay("not an address") == 0.0


@SQLITE
def test_an_account_without_a_password_or_a_bad_address_cannot_sign_in(env: dict[str, str]) -> None:
    invite("ann@sunny.example", make_company())
    for email, password in [
        ("ann@sunny.example", ""),
        ("ann@sunny.example", PASSWORD),
        ("not\nan address", "x"),
    ]:
        failed = attempt(email, password)
        assert type(failed) is AccountError and str(failed) == "wrong e-mail or password"


@SQLITE
def test_a_hash_made_with_a_lower_cost_is_upgraded_at_sign_in(env: dict[str, str], monkeypatch: Any) -> None:
    user = signed_up()
    apply_env({**env, "ARV_CONSOLE_PASSWORD_MEMORY_KIB": "512"}, monkeypatch)
    assert "m=256," in (account(user.email).password_hash or "")
    assert isinstance(attempt(user.email, PASSWORD), User)
    assert "m=512," in (account(user.email).password_hash or "")
    assert isinstance(attempt(user.email, PASSWORD), User)


# ---- sessions -----------------------------------------------------------------------------------


@SQLITE
def test_a_session_resolves_until_it_expires_or_ends(env: dict[str, str]) -> None:
    user = signed_up()
    with session_scope() as session:
        cookie, row = accounts.start_session(session, user, get_settings())
        assert (row.expires_at - row.created_at).total_seconds() == 14 * 86400
        assert row.id != cookie and len(row.csrf_token) == 64
        other_cookie, _ = accounts.start_session(session, user, get_settings())
    with session_scope() as session:
        resolved = accounts.resolve_session(session, cookie)
        assert resolved is not None and resolved[0].id == user.id and resolved[1].csrf_token == row.csrf_token
        assert accounts.resolve_session(session, None) is None
        assert accounts.resolve_session(session, "unknown") is None
        assert accounts.resolve_session(session, row.id) is None  # the stored hash is no cookie

    with session_scope() as session:
        session.execute(
            update(ConsoleSession)
            .values(last_seen_at=utcnow() - timedelta(seconds=30))
            .where(ConsoleSession.id == row.id)
        )
    with session_scope() as session:
        resolved = accounts.resolve_session(session, cookie)
        assert resolved is not None and utcnow() - resolved[1].last_seen_at > timedelta(seconds=29)  # kept
        session.execute(
            update(ConsoleSession)
            .values(last_seen_at=utcnow() - timedelta(seconds=90))
            .where(ConsoleSession.id == row.id)
        )
    with session_scope() as session:
        resolved = accounts.resolve_session(session, cookie)
        assert resolved is not None and utcnow() - resolved[1].last_seen_at < timedelta(seconds=5)  # noted

    with session_scope() as session:
        session.execute(
            update(ConsoleSession)
            .values(expires_at=utcnow() - timedelta(seconds=1))
            .where(ConsoleSession.id == row.id)
        )
    with session_scope() as session:
        assert accounts.resolve_session(session, cookie) is None
        accounts.end_session(session, other_cookie)
        accounts.end_session(session, None)
    with session_scope() as session:
        assert accounts.resolve_session(session, other_cookie) is None
        accounts.start_session(session, user, get_settings())
        # The ended sessions are gone; the new one remains.
        assert len(session.scalars(select(ConsoleSession)).all()) == 1


# ---- users --------------------------------------------------------------------------------------


@SQLITE
def test_users_are_refused_for_a_taken_or_bad_address_or_a_missing_company(env: dict[str, str]) -> None:
    company = make_company()
    invite("ann@sunny.example", company)
    with session_scope() as session:
        cases: list[tuple[Callable[[], object], type[Exception], str]] = [
            (
                lambda: accounts.create_user(
                    session, email="ANN@sunny.example", company_id=company, role=UserRole.OWNER
                ),
                AccountExists,
                "there is already an account for ann@sunny.example",
            ),
            (
                lambda: accounts.create_user(session, email="ann@", company_id=company, role=UserRole.OWNER),
                InvalidEmail,
                "not an e-mail address",
            ),
            (
                lambda: accounts.create_user(
                    session, email="a\nb@sunny.example", company_id=None, role=UserRole.OPERATOR
                ),
                InvalidEmail,
                "control characters",
            ),
            (
                lambda: accounts.create_user(
                    session, email="bob@sunny.example", company_id=4242, role=UserRole.OWNER
                ),
                LookupError,
                "there is no company 4242",
            ),
            (
                lambda: accounts.create_user(
                    session, email="bob@sunny.example", company_id=company, role=UserRole.OPERATOR
                ),
                ValueError,
                "an operator belongs to no company",
            ),
        ]
        for make, error, words in cases:
            with pytest.raises(error, match=words):
                make()


@SQLITE
def test_the_operator_lists_every_user_and_a_company_its_own(env: dict[str, str]) -> None:
    sunny, rainy = make_company("Sunny"), make_company("Rainy")
    invite("op@arv.example")
    invite("ann@sunny.example", sunny, UserRole.OWNER)
    invite("bob@rainy.example", rainy)
    with session_scope() as session:
        users = {user.email: user for user in accounts.list_users(session, None)}
        operator = accounts.principal_for(users["op@arv.example"])
        owner = accounts.principal_for(users["ann@sunny.example"])
        assert operator == Principal(is_admin=True, company_id=None, key_id=None)
        assert owner == Principal(is_admin=False, company_id=sunny, key_id=None)
        assert [u.email for u in accounts.list_users(session, operator)] == [
            "op@arv.example", "ann@sunny.example", "bob@rainy.example"
        ]  # fmt: skip
        assert [u.email for u in accounts.list_users(session, owner)] == ["ann@sunny.example"]
        assert (
            users["ann@sunny.example"].role == UserRole.OWNER and users["bob@rainy.example"].role == "member"
        )


@SQLITE
def test_deleting_a_company_deletes_its_users_with_their_sessions_and_links(env: dict[str, str]) -> None:
    from arv.services.deletion import delete_company

    user = signed_up("ann@sunny.example")
    invite("op@arv.example")
    with session_scope() as session:
        accounts.start_session(session, user, get_settings())
        accounts.issue_link(session, user, purpose="reset", settings=get_settings())
    with session_scope() as session:
        company = session.get(Company, user.company_id)
        assert company is not None
        delete_company(session, company)
    with session_scope() as session:
        assert [u.email for u in accounts.list_users(session, None)] == ["op@arv.example"]
        assert session.scalars(select(ConsoleSession)).all() == []
        operator = session.scalars(select(User)).one()
        assert [t.user_id for t in session.scalars(select(AccountToken))] == [operator.id]


# ---- the CLI ------------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    from arv.cli import app

    return CliRunner().invoke(app, list(args))


@SQLITE
def test_arv_users_create_prints_a_link_that_sets_the_password(env: dict[str, str]) -> None:
    company = make_company()
    made = cli("users", "create", "--company", str(company), "--email", "Ann@Sunny.example", "--owner")
    assert made.exit_code == 0, made.output
    assert made.stdout.count("\n") == 1
    token = token_of(made.stdout.strip())
    with session_scope() as session:
        user = accounts.link_user(session, token)
        assert (user.email, user.company_id, user.role) == ("ann@sunny.example", company, "owner")
    admin = cli("users", "create", "--admin", "--email", "op@arv.example")
    member = cli("users", "create", "--company", str(company), "--email", "bob@sunny.example")
    assert admin.exit_code == member.exit_code == 0
    assert account("op@arv.example").role == "operator" and account("bob@sunny.example").role == "member"
    set_password(token)
    assert isinstance(attempt("ann@sunny.example", PASSWORD), User)

    listing = cli("users", "list")
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["email", "role", "company", "last sign-in"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["op@arv.example", "ann@sunny.example", "bob@sunny.example"]
    assert rows["ann@sunny.example"].split()[1:3] == ["owner", str(company)]
    assert rows["ann@sunny.example"].rstrip().endswith("UTC")
    assert rows["bob@sunny.example"].rstrip().endswith("no password set yet")


@SQLITE
def test_arv_users_link_prints_a_new_link_for_an_existing_account_only(env: dict[str, str]) -> None:
    ann = signed_up()
    made = cli("users", "link", "--email", " ANN@sunny.example")
    assert made.exit_code == 0 and made.stdout.count("\n") == 1, made.output
    set_password(token_of(made.stdout.strip()), "another passphrase")
    assert isinstance(attempt("ann@sunny.example", "another passphrase"), User)
    assert account("ann@sunny.example").id == ann.id
    for email, words in (
        ("nobody@sunny.example", "there is no account"),
        ("not-an-address", "not an e-mail"),
    ):
        refused = cli("users", "link", "--email", email)
        assert refused.exit_code == 1 and refused.stdout == "" and words in refused.stderr, refused.output


@SQLITE
def test_arv_users_create_says_in_one_line_what_it_cannot_do(env: dict[str, str]) -> None:
    company = make_company()
    assert cli("users", "create", "--company", str(company), "--email", "ann@sunny.example").exit_code == 0
    for args, code, words in [
        (["--company", "4242", "--email", "bob@sunny.example"], 1, "error: there is no company 4242"),
        (
            ["--company", str(company), "--email", "ANN@sunny.example"],
            1,
            "already an account for ann@sunny.example",
        ),
        (["--company", str(company), "--email", "not-an-address"], 1, "not an e-mail address"),
        (["--admin", "--company", str(company), "--email", "bob@sunny.example"], 2, "exactly one of --admin"),
        (["--email", "bob@sunny.example"], 2, "exactly one of --admin"),
        (["--admin", "--owner", "--email", "bob@sunny.example"], 2, "has no company"),
    ]:
        result = cli("users", "create", *args)
        assert result.exit_code == code, (args, result.output)
        assert result.stdout == "" and result.stderr.count("\n") == 1 and words in result.stderr, args
    with session_scope() as session:
        assert [u.email for u in accounts.list_users(session, None)] == ["ann@sunny.example"]


# ---- account e-mails ----------------------------------------------------------------------------


def account_jobs() -> list[Job]:
    with session_scope() as session:
        return list(
            session.scalars(select(Job).where(Job.kind == "send_account_email").order_by(Job.created_at))
        )


def link_in(mail: Any) -> str:
    text = mail.get_body(("plain",)).get_content()
    (link,) = re.findall(r"http://testserver/console/set-password\?token=[\w-]+", text)
    assert link in mail.get_body(("html",)).get_content()
    return str(link)


@SQLITE
def test_the_invitation_mail_carries_a_working_link_in_the_company_language(mail: MailServer) -> None:
    company = make_company("Фотостудия", language="ru")
    with session_scope() as session:
        user, link = accounts.invite_user(
            session,
            email="vera@foto.example",
            company_id=company,
            role=UserRole.OWNER,
            settings=get_settings(),
        )
        assert link is None  # mailed, not shown
    with session_scope() as session:
        assert session.scalars(select(AccountToken)).all() == []  # the link is made when the job runs
    (job,) = account_jobs()
    assert job.queue == "notifications" and job.args == {"user_id": user.id, "purpose": "invite"}
    assert run_job_here(job.id) == {"sent": True, "user_id": user.id, "purpose": "invite", "link_id": 1}

    (message,) = mail.messages_to("vera@foto.example")
    assert message["Subject"] == "Приглашение в консоль ARV компании Фотостудия"
    assert "в течение 7 дней" in message.get_body(("plain",)).get_content()
    assert "arv-account-link-" in message["Message-ID"] and message["X-ARV-Account-Link"] == "1"
    token = token_of(link_in(message))
    with session_scope() as session:
        assert token not in str(session.get(Job, job.id).args)  # type: ignore[union-attr]
    set_password(token)
    assert isinstance(attempt("vera@foto.example", PASSWORD), User)


@SQLITE
def test_a_reset_is_mailed_only_to_an_existing_account_and_at_most_once_a_minute(mail: MailServer) -> None:
    user = signed_up("ann@sunny.example")
    for email in ("nobody@sunny.example", "not an address", " ANN@sunny.example", "ann@sunny.example"):
        with session_scope() as session:
            accounts.request_password_reset(session, email, get_settings())
    first, second = account_jobs()
    assert first.args == {"user_id": user.id, "purpose": "reset"}
    assert run_job_here(first.id)["sent"] is True  # type: ignore[index]
    assert run_job_here(second.id)["sent"] is False  # type: ignore[index]

    (message,) = mail.messages_to("ann@sunny.example")
    assert message["Subject"] == "Set a new password for the ARV console"
    assert "works once and for 1 hour;" in message.get_body(("plain",)).get_content()
    with session_scope() as session:
        cookie, _ = accounts.start_session(session, user, get_settings())
    set_password(token_of(link_in(message)), "a brand new password")
    assert isinstance(attempt("ann@sunny.example", "a brand new password"), User)
    with session_scope() as session:
        assert accounts.resolve_session(session, cookie) is None  # a reset signs out everywhere


@SQLITE
def test_without_a_mail_server_an_invitation_returns_its_link_and_nothing_is_queued(
    env: dict[str, str],
) -> None:
    with session_scope() as session:
        user, link = accounts.invite_user(
            session,
            email="ann@sunny.example",
            company_id=make_company(),
            role=UserRole.OWNER,
            settings=get_settings(),
        )
    assert link is not None
    with session_scope() as session:
        assert accounts.link_user(session, token_of(link)).id == user.id
        again = accounts.send_invitation(session, user, get_settings())  # a second invitation
        assert again is not None and accounts.link_user(session, token_of(again)).id == user.id
        accounts.request_password_reset(session, user.email, get_settings())
    assert account_jobs() == []


@SQLITE
def test_account_mails_say_how_long_their_link_works_in_the_persons_language(
    env: dict[str, str], mail: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_env(
        {**with_mail_server(env, mail), "ARV_CONSOLE_INVITE_TTL_S": "7200", "ARV_CONSOLE_RESET_TTL_S": "900"},
        monkeypatch,
    )
    company = make_company("Фотостудия", language="ru")
    with session_scope() as session:
        accounts.invite_user(
            session, email="op@arv.example", company_id=None, role=UserRole.OPERATOR, settings=get_settings()
        )
        user = accounts.create_user(
            session, email="vera@foto.example", company_id=company, role=UserRole.MEMBER
        )
        accounts.request_password_reset(session, user.email, get_settings())
    for job in account_jobs():
        assert run_job_here(job.id)["sent"] is True  # type: ignore[index]
    (invitation,) = mail.messages_to("op@arv.example")
    (reset,) = mail.messages_to("vera@foto.example")
    assert invitation["Subject"] == "You are invited to the ARV console as its operator"
    assert "The link works once and for 2 hours." in invitation.get_body(("plain",)).get_content()
    assert reset["Subject"] == "Новый пароль для консоли ARV"
    assert "в течение 15 минут;" in reset.get_body(("plain",)).get_content()
    assert 'lang="ru"' in reset.get_body(("html",)).get_content()
    for message in (invitation, reset):
        with session_scope() as session:
            assert accounts.link_user(session, token_of(link_in(message))).email == message["To"]


@SQLITE
def test_a_mailbox_the_server_refuses_fails_the_mail_for_good(mail: MailServer) -> None:
    mail.refuse.add("gone@sunny.example")
    with session_scope() as session:
        accounts.invite_user(
            session,
            email="gone@sunny.example",
            company_id=None,
            role=UserRole.OPERATOR,
            settings=get_settings(),
        )
    (job,) = account_jobs()
    run_job_here(job.id)
    (job,) = account_jobs()
    assert job.status == JobStatus.FAILED and "550" in (job.error or "")
    assert mail.messages == []


# ---- housekeeping -------------------------------------------------------------------------------


def test_the_prune_pass_deletes_ended_sessions_spent_links_and_stale_failures_only(
    env: dict[str, str],
) -> None:
    ann = signed_up()
    settings = get_settings()
    with session_scope() as session:
        user = session.get(User, ann.id)
        assert user is not None
        live_token, _ = accounts.start_session(session, user, settings)
        ended_token, ended = accounts.start_session(session, user, settings)
        ended.expires_at = utcnow() - timedelta(seconds=1)
    live_link = token_of(invite("bo@sunny.example", make_company("Other")))
    invite("cy@sunny.example", make_company("Third"))
    with session_scope() as session:
        session.execute(
            update(AccountToken)
            .where(AccountToken.user_id == account("cy@sunny.example").id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for email in ("stale@x.example", "locked@x.example", "recent@x.example"):
        attempt(email, "wrong password 1")
    for _ in range(MAX_FAILURES):
        attempt("locked@x.example", "wrong password 2")
    move_throttle_back("stale@x.example", settings.console_sign_in_lock_s + 1)

    with session_scope() as session:
        pruned = accounts.prune_console_accounts(session, settings)
    # Ann's invitation (used) and Cy's expired link go; Bo's live link and the live session stay.
    assert pruned == {"sessions_deleted": 1, "links_deleted": 2, "sign_in_failures_deleted": 1}
    with session_scope() as session:
        assert accounts.resolve_session(session, live_token) is not None
        assert accounts.resolve_session(session, ended_token) is None
        assert accounts.link_user(session, live_link).email == "bo@sunny.example"
        left = set(session.scalars(select(SignInThrottle.email)))
    assert left == {"locked@x.example", "recent@x.example"}
    with session_scope() as session:
        assert set(accounts.prune_console_accounts(session, settings).values()) == {0}
