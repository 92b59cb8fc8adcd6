"""Notifications reach e-mail (a real SMTP server) and Telegram (a local Bot API) once, in the company's
language, through retries of a channel that is down, and fail at once when refused for good."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from arv.db.models import (
    ARContent,
    Company,
    DeliveryStatus,
    Job,
    JobStatus,
    Notification,
    NotificationDelivery,
    NotificationType,
    Project,
    utcnow,
)
from arv.db.session import get_engine, session_scope
from arv.jobs import store
from arv.jobs.runner import RunAgain
from arv.services.notify import outbox
from arv.services.notify.delivery import DELIVER
from arv.services.notify.errors import ChannelUnavailable
from tests.conftest import apply_env
from tests.support.jobs import run_job_here
from tests.support.mail_server import MailServer, self_signed_certificate, smtp_server
from tests.support.platform import wait_until, worker_pool
from tests.support.servers import free_port
from tests.support.telegram_server import (
    BLOCKED,
    CHAT_NOT_FOUND,
    SERVER_ERROR,
    FakeBotApi,
    fake_bot_api,
    too_many_requests,
)

SMTP_LOGIN = ("arv-mailer", "s3cret")


@dataclass
class Channels:
    env: dict[str, str]
    mail: MailServer
    bot: FakeBotApi


@pytest.fixture
def channels(arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Channels]:
    """A mail server that demands a login and a Bot API, both on loopback, set in the environment."""
    with smtp_server(login=SMTP_LOGIN) as mail, fake_bot_api() as bot:
        env = {
            **arv_env,
            "ARV_SMTP_HOST": mail.host,
            "ARV_SMTP_PORT": str(mail.port),
            "ARV_SMTP_USERNAME": SMTP_LOGIN[0],
            "ARV_SMTP_PASSWORD": SMTP_LOGIN[1],
            "ARV_SMTP_FROM": "ARV Studio <notify@arv.example>",
            "ARV_SMTP_RATE_PER_S": "50",
            "ARV_TELEGRAM_BOT_TOKEN": bot.token,
            "ARV_TELEGRAM_API_URL": bot.url,
            "ARV_TELEGRAM_CHAT_INTERVAL_S": "0.2",
            "ARV_JOB_RETRY_BASE_S": "1",
            "ARV_JOB_RETRY_MAX_S": "2",
            # This process has no broker: the jobs it writes reach a worker through that worker's
            # sweep, which comes 0.5-1 interval after the worker is ready.
            "ARV_SWEEP_INTERVAL_S": "1",
        }
        apply_env(env, monkeypatch)
        yield Channels(env, mail, bot)


def make_company(name: str, *, email: str | None, chat: str | None, language: str = "en") -> tuple[int, int]:
    """A company and a project of it that expires in five days; returns their ids."""
    with session_scope() as session:
        company = Company(name=name, contact_email=email, telegram_chat_id=chat, language=language)
        session.add(company)
        session.flush()
        project = Project(
            company_id=company.id, name=f"{name} prints", expires_at=utcnow() + timedelta(days=5, hours=1)
        )
        session.add(project)
        session.flush()
        return company.id, project.id


def warn_of_expiry(company_id: int, project_id: int) -> Notification | None:
    with session_scope() as session:
        return outbox.create_notification(
            session,
            company_id=company_id,
            notification_type=NotificationType.EXPIRY_WARNING,
            dedupe_key=f"expiry_warning:{project_id}",
            project_id=project_id,
        )


def deliveries() -> dict[str, NotificationDelivery]:
    with session_scope() as session:
        return {d.recipient: d for d in session.scalars(select(NotificationDelivery))}


def delivery_jobs() -> list[Job]:
    with session_scope() as session:
        return list(session.scalars(select(Job).where(Job.kind == DELIVER.name).order_by(Job.created_at)))


def run_job(job_id: str) -> dict[str, object]:
    outcome = run_job_here(job_id)
    assert isinstance(outcome, dict), outcome
    return outcome


def test_expiry_warning_reaches_each_channel_once_in_the_company_language(
    channels: Channels, tmp_path: Path
) -> None:
    en_company, en_project = make_company("Sunny Prints", email="owner@sunny.example", chat="1001")
    ru_company, ru_project = make_company(
        "Фотостудия", email="vladelec@foto.example", chat="2002", language="ru"
    )
    assert warn_of_expiry(en_company, en_project) is not None
    assert warn_of_expiry(ru_company, ru_project) is not None
    # The same event again (a second run of the periodic pass) notifies nobody.
    assert warn_of_expiry(en_company, en_project) is None

    with worker_pool(channels.env, tmp_path) as pool:
        pool.start("notifications", concurrency=2)
        wait_until(
            lambda: (
                all(d.status == DeliveryStatus.SENT for d in deliveries().values()) and len(deliveries()) == 4
            ),
            timeout=60,
            what="all four deliveries sent",
        )

    (en_mail,) = channels.mail.messages_to("owner@sunny.example")
    (ru_mail,) = channels.mail.messages_to("vladelec@foto.example")
    assert len(channels.mail.messages) == 2
    assert en_mail["Subject"] == 'Project "Sunny Prints prints" expires on ' + _date_en(en_project)
    assert "in 6 days" in en_mail.get_body(("plain",)).get_content()
    assert "<strong>Sunny Prints prints</strong>" in en_mail.get_body(("html",)).get_content()
    assert ru_mail["Subject"].startswith("Срок проекта «Фотостудия prints» истекает")
    assert "через 6 дней" in ru_mail.get_body(("plain",)).get_content()
    assert 'lang="ru"' in ru_mail.get_body(("html",)).get_content()
    assert channels.mail.logins == [SMTP_LOGIN[0]] * 2

    (en_chat,) = channels.bot.messages_to("1001")
    (ru_chat,) = channels.bot.messages_to("2002")
    assert len(channels.bot.received) == 2
    assert en_chat.text.startswith('Project "Sunny Prints prints" expires on')
    assert "продлите проект" in ru_chat.text
    assert all(d.attempts == 1 and d.sent_at is not None for d in deliveries().values())


def _date_en(project_id: int) -> str:
    from arv.services.notify.messages import format_date

    with session_scope() as session:
        project = session.get(Project, project_id)
        assert project is not None and project.expires_at is not None
        return format_date(project.expires_at, "en")


def test_a_channel_that_is_down_is_retried_until_it_delivers(
    channels: Channels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down_port = free_port()  # nothing listens here yet: the mail server is down
    env = {
        **channels.env,
        "ARV_SMTP_PORT": str(down_port),
        "ARV_SMTP_USERNAME": "",
        "ARV_SMTP_PASSWORD": "",
    }
    apply_env(env, monkeypatch)
    # Telegram first asks to wait a second (429), then fails on its side (502), then takes the message.
    channels.bot.answer_next(too_many_requests(retry_after=1))
    channels.bot.answer_next(SERVER_ERROR)
    company, project = make_company("Late Lab", email="late@lab.example", chat="3003")
    warn_of_expiry(company, project)

    with worker_pool(env, tmp_path) as pool:
        pool.start("notifications", concurrency=2)

        def mail_retried() -> bool:
            mail = deliveries()["late@lab.example"]
            return (
                mail.attempts >= 2
                and mail.status == DeliveryStatus.PENDING
                and "cannot reach the mail server" in (mail.last_error or "")
            )

        wait_until(mail_retried, timeout=60, what="two failed attempts at the mail server")
        with smtp_server(port=down_port) as revived:
            wait_until(
                lambda: all(d.status == DeliveryStatus.SENT for d in deliveries().values()),
                timeout=60,
                what="both deliveries sent once the channels are back",
            )
        assert len(revived.messages_to("late@lab.example")) == 1

    assert [status for _, status, _ in channels.bot.refused] == [429, 502]
    (message,) = channels.bot.messages_to("3003")
    first_refusal_at = channels.bot.refused[0][2]
    assert message.at - first_refusal_at >= 1.0, "the retry_after of the 429 answer was not honoured"
    assert deliveries()["3003"].attempts == 3


def test_a_permanent_refusal_fails_at_once_without_retries(channels: Channels) -> None:
    channels.mail.refuse.add("nobody@gone.example")
    channels.bot.answer_chat("4004", BLOCKED)
    channels.bot.answer_chat("5005", CHAT_NOT_FOUND)
    first, first_project = make_company("Gone Co", email="nobody@gone.example", chat="4004")
    second, second_project = make_company("Lost Co", email=None, chat="5005")
    warn_of_expiry(first, first_project)
    warn_of_expiry(second, second_project)

    for job in delivery_jobs():
        run_job(job.id)

    by_recipient = deliveries()
    assert {r: d.status for r, d in by_recipient.items()} == {
        "nobody@gone.example": DeliveryStatus.FAILED,
        "4004": DeliveryStatus.FAILED,
        "5005": DeliveryStatus.FAILED,
    }
    assert "550" in (by_recipient["nobody@gone.example"].last_error or "")
    assert "bot was blocked" in (by_recipient["4004"].last_error or "")
    assert "chat not found" in (by_recipient["5005"].last_error or "")
    assert all(d.attempts == 1 for d in by_recipient.values())
    jobs_after = delivery_jobs()
    assert all(j.status == JobStatus.FAILED and j.attempts == 1 for j in jobs_after)
    assert len(channels.bot.refused) == 2 and channels.mail.messages == []


def test_redelivery_of_the_task_sends_nothing_twice(channels: Channels) -> None:
    company, project = make_company("Once Only", email="once@only.example", chat="6006")
    warn_of_expiry(company, project)
    jobs_before = delivery_jobs()
    for job in jobs_before:
        assert run_job(job.id)["sent_now"] is True
    # The broker delivers the same messages again, e.g. after a worker lost its connection.
    for job in jobs_before:
        assert run_job(job.id) == {"skipped": True}
    # A second job for the same deliveries (a lease that expired while the first was sending).
    with session_scope() as session:
        outbox.enqueue_deliveries(session, [(d.id, company) for d in deliveries().values()])
    for job in delivery_jobs()[len(jobs_before) :]:
        assert run_job(job.id)["sent_now"] is False
    assert len(channels.mail.messages_to("once@only.example")) == 1
    assert len(channels.bot.messages_to("6006")) == 1


def test_a_delivery_whose_worker_died_while_sending_is_not_sent_again(channels: Channels) -> None:
    company, project = make_company("Crashy", email=None, chat="7007")
    warn_of_expiry(company, project)
    (delivery,) = deliveries().values()
    # What a worker killed between the Bot API's answer and its commit leaves behind.
    with session_scope() as session:
        session.execute(
            text(
                "UPDATE notification_deliveries SET status='sending', attempts=1, claimed_at=:at WHERE id=:id"
            ),
            {"at": (utcnow() - timedelta(hours=1)).replace(tzinfo=None), "id": delivery.id},
        )
    (job,) = delivery_jobs()
    run_job(job.id)
    after = deliveries()["7007"]
    assert after.status == DeliveryStatus.FAILED and "unknown" in (after.last_error or "")
    assert channels.bot.received == []


def test_a_jobs_own_earlier_claim_is_outcome_unknown_never_success(channels: Channels) -> None:
    # The attempt that claimed the delivery sent it and then lost the database before recording it;
    # the next attempt of the same job finds a fresh `sending` claim that is its own.
    company, project = make_company("Own Claim", email=None, chat="7107")
    warn_of_expiry(company, project)
    (delivery,) = deliveries().values()
    (job,) = delivery_jobs()
    with session_scope() as session:
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery.id)
            .values(status=DeliveryStatus.SENDING, attempts=1, claimed_at=utcnow(), claimed_by_job=job.id)
        )
    assert "failed" in run_job(job.id)
    after = deliveries()["7107"]
    assert after.status == DeliveryStatus.FAILED and "unknown" in (after.last_error or "")
    (settled,) = delivery_jobs()
    assert settled.status == JobStatus.FAILED
    assert channels.bot.received == []


def test_another_jobs_live_claim_makes_the_delivery_wait_not_succeed(channels: Channels) -> None:
    company, project = make_company("Two Jobs", email=None, chat="7207")
    warn_of_expiry(company, project)
    (delivery,) = deliveries().values()
    (first,) = delivery_jobs()
    with session_scope() as session:
        second = outbox.enqueue_deliveries(session, [(delivery.id, company)])[0]
    with get_engine().connect() as connection:
        assert store.claim(connection, first.id, lease_s=60) is not None  # the first job is sending
    with session_scope() as session:
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery.id)
            .values(status=DeliveryStatus.SENDING, attempts=1, claimed_at=utcnow(), claimed_by_job=first.id)
        )
    outcome = run_job_here(second)
    assert isinstance(outcome, RunAgain)
    with session_scope() as session:
        waiting = session.get(Job, second)
        assert waiting is not None and waiting.status == JobStatus.QUEUED
    assert deliveries()["7207"].status == DeliveryStatus.SENDING
    assert channels.bot.received == []


def test_a_sent_message_is_recorded_sent_when_the_database_drops_the_first_commit(
    channels: Channels, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from arv.services.notify import delivery as delivery_service

    company, project = make_company("Flaky DB", email=None, chat="7307")
    warn_of_expiry(company, project)
    real_settle = delivery_service._settle
    calls: list[str] = []

    def settle_failing_once(session, delivery_id, from_status, *, commit=True, **values):  # type: ignore[no-untyped-def]
        if values.get("status") == DeliveryStatus.SENT and not calls:
            calls.append("dropped")
            raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
        return real_settle(session, delivery_id, from_status, commit=commit, **values)

    monkeypatch.setattr(delivery_service, "_settle", settle_failing_once)
    (job,) = delivery_jobs()
    assert run_job(job.id)["sent_now"] is True
    assert calls == ["dropped"]
    assert deliveries()["7307"].status == DeliveryStatus.SENT
    assert len(channels.bot.messages_to("7307")) == 1


def test_messages_to_one_chat_are_spaced_by_the_chat_interval(channels: Channels) -> None:
    # A first message elsewhere opens the connection the measured ones reuse.
    warm_up, warm_up_project = make_company("Warm", email=None, chat="8000")
    warn_of_expiry(warm_up, warm_up_project)
    (first_job,) = delivery_jobs()
    run_job(first_job.id)
    company, _ = make_company("Busy Chat", email=None, chat="8008")
    with session_scope() as session:
        for n in range(3):
            project = Project(company_id=company, name=f"album {n}", expires_at=utcnow() + timedelta(days=3))
            session.add(project)
            session.flush()
            outbox.create_notification(
                session,
                company_id=company,
                notification_type=NotificationType.EXPIRY_WARNING,
                dedupe_key=f"expiry_warning:{project.id}",
                project_id=project.id,
            )
    for job in delivery_jobs()[1:]:
        run_job(job.id)
    assert len(channels.bot.messages_to("8008")) == 3
    # The limiter spaces the starts of the sends; their arrival varies by a few milliseconds.
    assert (channels.bot.shortest_gap_per_chat() or 0) >= 0.2 - 0.03


def test_notifications_written_set_based_are_fanned_out_once(channels: Channels) -> None:
    with_both, _ = make_company("Both", email="both@x.example", chat="9009")
    mail_only, _ = make_company("Mail only", email="mail@x.example", chat=None)
    silent, _ = make_company("Silent", email=None, chat="  ")
    with session_scope() as session:
        # What a periodic pass does: one INSERT ... SELECT, no deliveries.
        session.execute(
            text(
                "INSERT INTO notifications (company_id, notification_type, project_id, subject, message,"
                " dedupe_key, created_at)"
                " SELECT p.company_id, 'expiry_warning', p.id, 'expires soon', 'renew it',"
                " 'expiry_warning:' || p.id, :now FROM projects p"
            ),
            {"now": utcnow().replace(tzinfo=None)},
        )
        assert outbox.fan_out_notifications(session) == 3
    with session_scope() as session:
        assert outbox.fan_out_notifications(session) == 0
        channels_by_company = {
            company: sorted(
                session.scalars(
                    select(NotificationDelivery.channel)
                    .join(Notification)
                    .where(Notification.company_id == company)
                )
            )
            for company in (with_both, mail_only, silent)
        }
        assert (
            session.scalar(
                select(func.count()).select_from(Notification).where(Notification.fanned_out_at.is_(None))
            )
            == 0
        )
    assert channels_by_company == {with_both: ["email", "telegram"], mail_only: ["email"], silent: []}
    jobs = delivery_jobs()
    assert len(jobs) == 3 and {j.status for j in jobs} == {JobStatus.QUEUED}
    for job in jobs:
        run_job(job.id)
    assert len(channels.mail.messages) == 2 and len(channels.bot.received) == 1


def test_a_marker_that_fails_for_good_notifies_the_company_once(channels: Channels) -> None:
    from arv.services import markers

    company, project = make_company("Blurry Prints", email="blurry@prints.example", chat=None, language="ru")
    with session_scope() as session:
        content = ARContent(
            company_id=company,
            project_id=project,
            title="Свадьба",
            image_key="images/blurry.png",
            image_content_type="image/png",
            image_width=640,
            image_height=480,
        )
        session.add(content)
        session.flush()
        job_id = markers.request_compile(session, content)
    reason = "the image has too little detail to be tracked"
    for _ in range(2):  # the sweep may report the same final failure again
        with session_scope() as session:
            failed_job = session.get(Job, job_id)
            assert failed_job is not None
            assert markers.COMPILE_CONTENT_MARKER.on_failure is not None
            markers.COMPILE_CONTENT_MARKER.on_failure(session, failed_job, reason)

    with session_scope() as session:
        (notification,) = session.scalars(select(Notification))
        assert notification.notification_type == NotificationType.MARKER_FAILED
        assert notification.ar_content_id == content.id and notification.project_id == project
        assert session.get(ARContent, content.id).marker_status == "failed"  # type: ignore[union-attr]
    for queued in delivery_jobs():
        run_job(queued.id)
    (mail,) = channels.mail.messages_to("blurry@prints.example")
    assert mail["Subject"] == "Не удалось создать AR-маркер для «Свадьба»"
    assert reason in mail.get_body(("plain",)).get_content()


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_email_goes_over_tls_with_a_login_when_the_server_asks(tls: str, tmp_path: Path) -> None:
    from arv.config import Settings
    from arv.services.notify.email import EmailChannel
    from arv.services.notify.messages import RenderedMessage

    certificate = self_signed_certificate(tmp_path)
    with smtp_server(tls=tls, certificate=certificate, login=SMTP_LOGIN) as mail:
        settings = Settings(
            smtp_host=mail.host,
            smtp_port=mail.port,
            smtp_starttls=tls == "starttls",
            smtp_ssl=tls == "ssl",
            smtp_username=SMTP_LOGIN[0],
            smtp_password=SMTP_LOGIN[1],
            smtp_ca_file=str(certificate[0]),
        )
        message = RenderedMessage("Над принтом", "Текст", "<p>Текст</p>")
        EmailChannel(settings).send("secure@tls.example", message, delivery_id=42)
        (received,) = mail.messages_to("secure@tls.example")
        assert received["Subject"] == "Над принтом" and received["X-ARV-Delivery"] == "42"
        assert mail.logins == [SMTP_LOGIN[0]]
        # A certificate the client does not trust is never sent a password.
        untrusted = settings.model_copy(update={"smtp_ca_file": None})
        with pytest.raises(ChannelUnavailable, match="certificate"):
            EmailChannel(untrusted).send("secure@tls.example", message, delivery_id=43)
        assert len(mail.messages) == 1
