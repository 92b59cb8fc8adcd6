"""One source of words: the subject and text the API lists for a notification are what its e-mail (as
a real SMTP server receives it) and its Telegram message (at a local Bot API) say, for every type in
both languages, and no name a record holds breaks a delivery or changes what it says."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from arv.config import Settings
from arv.db.models import (
    ARContent,
    Channel,
    Company,
    DeliveryStatus,
    Job,
    JobStatus,
    Notification,
    NotificationDelivery,
    Portrait,
    Project,
    utcnow,
)
from arv.db.session import session_scope
from arv.services import expiry
from arv.services.auth import create_key
from arv.services.notify import messages, outbox
from arv.services.notify.delivery import DELIVER
from arv.services.notify.email import EmailChannel
from arv.services.notify.messages import RenderedMessage, format_date
from tests.conftest import apply_env
from tests.support.jobs import run_job_here
from tests.support.mail_server import MailServer, smtp_server
from tests.support.telegram_server import FakeBotApi, ReceivedMessage, fake_bot_api

REASON = "the image has too little detail to be tracked"


@dataclass
class Wired:
    mail: MailServer
    bot: FakeBotApi


@pytest.fixture
def wired(arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    """A real SMTP server and a local Bot API on loopback, set in the environment."""
    with smtp_server() as mail, fake_bot_api() as bot:
        apply_env(
            {
                **arv_env,
                "ARV_SMTP_HOST": mail.host,
                "ARV_SMTP_PORT": str(mail.port),
                "ARV_SMTP_FROM": "ARV <no-reply@arv.local>",
                "ARV_SMTP_RATE_PER_S": "100",
                "ARV_TELEGRAM_BOT_TOKEN": bot.token,
                "ARV_TELEGRAM_API_URL": bot.url,
                "ARV_TELEGRAM_CHAT_INTERVAL_S": "0.01",
            },
            monkeypatch,
        )
        yield Wired(mail, bot)


@pytest.fixture
def api(wired: Wired) -> Iterator[TestClient]:
    from arv.api.app import create_app

    with TestClient(create_app()) as client:
        yield client


@dataclass
class Sent:
    """What each channel received for one notification."""

    mail: EmailMessage
    chat: ReceivedMessage


def make_company(name: str, language: str, *, email_address: str = "studio@prints.example") -> int:
    with session_scope() as session:
        company = Company(name=name, contact_email=email_address, telegram_chat_id="5150", language=language)
        session.add(company)
        session.flush()
        return company.id


def make_project(company_id: int, name: str, expires_at: datetime) -> int:
    with session_scope() as session:
        project = Project(
            company_id=company_id, name=name, expires_at=expires_at, notify_before_expiry_days=7
        )
        session.add(project)
        session.flush()
        return project.id


def make_content(company_id: int, project_id: int, title: str) -> ARContent:
    with session_scope() as session:
        content = ARContent(
            company_id=company_id,
            project_id=project_id,
            title=title,
            image_key="images/a.png",
            image_content_type="image/png",
            image_width=640,
            image_height=480,
        )
        session.add(content)
        session.flush()
        session.expunge(content)
        return content


def make_portrait(company_id: int) -> Portrait:
    with session_scope() as session:
        portrait = Portrait(
            company_id=company_id,
            image_key="images/p.png",
            image_content_type="image/png",
            image_width=640,
            image_height=480,
        )
        session.add(portrait)
        session.flush()
        session.expunge(portrait)
        return portrait


def run_periodic_passes() -> None:
    """The expiry passes as Beat runs them (set-based SQL), then the fan-out of what they wrote."""
    with session_scope() as session:
        expiry.check_expiring_projects(session)
        expiry.deactivate_expired_content(session)
        outbox.fan_out_notifications(session)


def marker_failed(subject: Portrait | ARContent, job_id: str) -> None:
    """What a marker job that failed for good does: notify the company (read afresh, as the job does)."""
    with session_scope() as session:
        record = session.get_one(type(subject), subject.id)
        outbox.notify_marker_failed(session, record, job_id=job_id, reason=REASON)


def deliver_everything(wired: Wired) -> dict[int, Sent]:
    """Run every queued delivery job, one at a time; what arrived for each notification, by its id."""
    with session_scope() as session:
        queued = list(
            session.execute(
                select(Job.id, Job.args).where(Job.kind == DELIVER.name, Job.status == JobStatus.QUEUED)
            )
        )
        deliveries = {
            d.id: (d.notification_id, d.channel) for d in session.scalars(select(NotificationDelivery))
        }
    mails: dict[int, EmailMessage] = {}
    chats: dict[int, ReceivedMessage] = {}
    for job_id, args in queued:
        notification_id, channel = deliveries[args["delivery_id"]]
        mails_before, chats_before = len(wired.mail.messages), len(wired.bot.received)
        outcome = run_job_here(job_id)
        assert isinstance(outcome, dict) and outcome.get("sent_now") is True, outcome
        if channel == Channel.EMAIL:
            (mails[notification_id],) = wired.mail.messages[mails_before:]
        else:
            (chats[notification_id],) = wired.bot.received[chats_before:]
    assert mails.keys() == chats.keys()
    return {n: Sent(mails[n], chats[n]) for n in mails}


def listed(api: TestClient, company_id: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        key = create_key(session, company_id=company_id)
    response = api.get("/api/notifications", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return list(response.json())


def plain_body(mail: EmailMessage) -> str:
    """The text part as written: SMTP carries line endings as CR LF (a 7-bit part decodes with them),
    and a MIME text part ends with one."""
    body = mail.get_body(("plain",))
    assert body is not None
    content = str(body.get_content()).replace("\r\n", "\n")
    assert content.endswith("\n")
    return content[: -len("\n")]


def assert_api_says_what_was_sent(notification: dict[str, Any], sent: Sent) -> None:
    assert notification["subject"] == sent.mail["Subject"]
    assert notification["message"] == plain_body(sent.mail)
    assert sent.chat.text == f"{notification['subject']}\n\n{notification['message']}"
    assert sent.chat.parse_mode is None


def expected_subjects(language: str, expires_on: str, portrait_id: int) -> dict[str, str]:
    if language == "ru":
        return {
            "expiry_warning": f"Срок проекта «Выпускной альбом» истекает {expires_on}",
            "expired": "Срок проекта «Свадьба 2026» истёк",
            "marker_failed:content": "Не удалось создать AR-маркер для «Портрет бабушки»",
            "marker_failed:portrait": f"Не удалось создать AR-маркер для портрета {portrait_id}",
        }
    return {
        "expiry_warning": f'Project "Выпускной альбом" expires on {expires_on}',
        "expired": 'Project "Свадьба 2026" has expired',
        "marker_failed:content": 'AR marker for "Портрет бабушки" could not be made',
        "marker_failed:portrait": f"AR marker for portrait {portrait_id} could not be made",
    }


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_api_lists_the_words_each_channel_sent_for_every_type(
    wired: Wired, api: TestClient, language: str
) -> None:
    company = make_company("Фото & Co", language)
    expires_at = utcnow() + timedelta(days=3, hours=2)
    warned = make_project(company, "Выпускной альбом", expires_at)
    expired = make_project(company, "Свадьба 2026", utcnow() - timedelta(minutes=1))
    content = make_content(company, warned, "Портрет бабушки")
    portrait = make_portrait(company)
    run_periodic_passes()
    marker_failed(content, "job-content")
    marker_failed(portrait, "job-portrait")

    sent = deliver_everything(wired)
    notifications = listed(api, company)
    assert len(notifications) == len(sent) == 4

    def kind(n: dict[str, Any]) -> str:
        if n["notification_type"] != "marker_failed":
            return str(n["notification_type"])
        return "marker_failed:content" if n["ar_content_id"] else "marker_failed:portrait"

    expires_on = format_date(expires_at, language)
    with session_scope() as session:
        expired_on = format_date(session.get_one(Project, expired).expires_at, language)  # type: ignore[arg-type]
    assert {kind(n): n["subject"] for n in notifications} == expected_subjects(
        language, expires_on, portrait.id
    )
    for notification in notifications:
        assert_api_says_what_was_sent(notification, sent[notification["id"]])
    by_kind = {kind(n): n for n in notifications}
    # The dates read as the templates write them, not as SQL spells a timestamp.
    assert f" {expires_on}" in by_kind["expiry_warning"]["message"]
    assert (" (in 4 days)" if language == "en" else " (через 4 дня)") in by_kind["expiry_warning"]["message"]
    assert f" {expired_on}" in by_kind["expired"]["message"]
    assert REASON in by_kind["marker_failed:content"]["message"]
    assert "UTC" not in "".join(n["subject"] + n["message"] for n in notifications)


def test_what_was_sent_does_not_change_when_the_records_change_later(wired: Wired, api: TestClient) -> None:
    company = make_company("Sunny Prints", "en")
    project = make_project(company, "Wedding", utcnow() + timedelta(days=2))
    run_periodic_passes()
    (sent,) = deliver_everything(wired).values()
    with session_scope() as session:
        session.execute(update(Project).where(Project.id == project).values(name="Renamed"))
        session.execute(update(Company).where(Company.id == company).values(name="Other", language="ru"))
    (notification,) = listed(api, company)
    assert 'Project "Wedding" expires on' in notification["subject"]
    assert_api_says_what_was_sent(notification, sent)


def test_a_notification_written_before_payloads_kept_facts_is_rendered_from_its_records(
    wired: Wired, api: TestClient
) -> None:
    company = make_company("Old Rows", "ru")
    project = make_project(company, "Архив", utcnow() + timedelta(days=5))
    with session_scope() as session:
        # What the expiry pass of the previous release wrote: words built in SQL, a partial payload.
        session.execute(
            text(
                "INSERT INTO notifications (company_id, notification_type, project_id, subject, message,"
                " payload, dedupe_key, created_at) VALUES (:company, 'expiry_warning', :project,"
                " 'Срок действия проекта «Архив» истекает 2027-03-13 12:00 UTC', 'old words',"
                " :payload, 'expiry_warning:old', :now)"
            ),
            {
                "company": company,
                "project": project,
                "payload": json.dumps({"project_id": project, "project_name": "Архив", "language": "ru"}),
                "now": utcnow().replace(tzinfo=None),
            },
        )
        outbox.fan_out_notifications(session)
    (sent,) = deliver_everything(wired).values()
    (notification,) = listed(api, company)
    assert notification["subject"].startswith("Срок проекта «Архив» истекает ")
    assert_api_says_what_was_sent(notification, sent)


def test_a_name_with_line_breaks_stored_in_the_database_is_mailed_on_one_line(
    wired: Wired, api: TestClient
) -> None:
    company = make_company("Studio", "en")
    project = make_project(company, "placeholder", utcnow() + timedelta(days=2))
    content = make_content(company, project, "placeholder")
    with session_scope() as session:
        # Written past the API's checks, as rows stored before them were.
        session.execute(
            text("UPDATE projects SET name = :name WHERE id = :id"),
            {"name": "Line one\r\nBcc: victim@example.com\n\rLine two", "id": project},
        )
        session.execute(
            text("UPDATE ar_contents SET title = :title WHERE id = :id"),
            {"title": "Title\u2028with\x0bbreaks\x85and\ttabs", "id": content.id},
        )
        session.execute(
            text("UPDATE companies SET name = :name WHERE id = :id"), {"name": "Two\nLines", "id": company}
        )
    run_periodic_passes()
    marker_failed(content, "job-breaks")
    sent = deliver_everything(wired)

    with session_scope() as session:
        statuses = set(session.scalars(select(NotificationDelivery.status)))
    assert statuses == {DeliveryStatus.SENT}
    notifications = {n["notification_type"]: n for n in listed(api, company)}
    warning, failed = notifications["expiry_warning"], notifications["marker_failed"]
    assert warning["subject"].startswith('Project "Line one Bcc: victim@example.com Line two" expires on ')
    assert failed["subject"] == 'AR marker for "Title with breaks and tabs" could not be made'
    for notification in notifications.values():
        mail = sent[notification["id"]].mail
        assert mail["Subject"] == notification["subject"]
        assert mail["Bcc"] is None and mail.get_all("Subject") == [notification["subject"]]
        assert notification["message"].startswith("Hello Two Lines,\n\n")
        assert_api_says_what_was_sent(notification, sent[notification["id"]])
    assert [m["To"] for m in wired.mail.messages] == ["studio@prints.example"] * 2


def test_an_address_with_a_line_break_fails_its_delivery_with_a_reason_to_act_on(wired: Wired) -> None:
    company = make_company("Studio", "en")
    make_project(company, "Album", utcnow() + timedelta(days=2))
    with session_scope() as session:
        session.execute(
            text("UPDATE companies SET contact_email = :address WHERE id = :id"),
            {"address": "owner@prints.example\r\nBcc: victim@example.com", "id": company},
        )
    run_periodic_passes()
    with session_scope() as session:
        jobs = list(session.scalars(select(Job.id).where(Job.kind == DELIVER.name)))
    for job_id in jobs:
        run_job_here(job_id)
    with session_scope() as session:
        by_channel = {d.channel: d for d in session.scalars(select(NotificationDelivery))}
        job_errors = set(session.scalars(select(Job.error).where(Job.kind == DELIVER.name)))
    mail = by_channel[Channel.EMAIL]
    assert mail.status == DeliveryStatus.FAILED
    assert mail.last_error is not None and "correct the company's contact_email" in mail.last_error
    assert "internal error" not in mail.last_error
    assert not any("internal error" in (error or "") for error in job_errors)
    assert by_channel[Channel.TELEGRAM].status == DeliveryStatus.SENT
    assert wired.mail.messages == []


HOSTILE_NAMES = [
    '<b>Tom & "Jerry"</b> <script>alert(1)</script>',
    "*bold* _italic_ `code` ~strike~ [link](http://x.example) ||spoiler||",
    "&amp; &lt;b&gt; &#x27; \\*escaped\\*",
    "=?utf-8?b?SGk=?= and =?utf-8?q?x?=",
    "Фото «в кавычках» — 100% ✓ 😀",
    "  spaced   out  ",
]


@pytest.mark.parametrize("language", ["en", "ru"])
def test_hostile_names_reach_telegram_and_the_mail_as_written(
    wired: Wired, api: TestClient, language: str
) -> None:
    company = make_company("Hostile <Co> & *Sons*", language)
    for n, name in enumerate(HOSTILE_NAMES):
        project = make_project(company, name, utcnow() + timedelta(days=2))
        marker_failed(make_content(company, project, name), f"job-{n}")
    run_periodic_passes()
    sent = deliver_everything(wired)
    notifications = listed(api, company)
    assert len(notifications) == 2 * len(HOSTILE_NAMES)

    shown = set()
    for notification in notifications:
        delivered = sent[notification["id"]]
        assert_api_says_what_was_sent(notification, delivered)
        html = delivered.mail.get_body(("html",))
        assert html is not None
        markup = html.get_content()
        assert "<script>" not in markup and "<b>Tom" not in markup and "&lt;Co&gt; &amp; *Sons*" in markup
        shown.update(name for name in HOSTILE_NAMES if name in delivered.chat.text)
    assert shown == set(HOSTILE_NAMES)
    # Telegram's text is the templates' output for the same facts, unescaped: no parse mode reads it.
    with session_scope() as session:
        first = session.get_one(Notification, notifications[-1]["id"])
        words = messages.render_notification(session, first)
    assert sent[first.id].chat.text == words.chat_text and sent[first.id].chat.parse_mode is None


@pytest.mark.parametrize(
    "subject",
    [
        "one\r\ntwo",
        "one\ntwo\rthree",
        "form\x0cfeed\x0bvertical\x1cfile\x1dgroup\x1erecord\x85next\u2028line\u2029paragraph",
        "nul\x00escape\x1bdelete\x7f",
        "=?utf-8?b?SGk=?=",
        "Срок проекта «=?utf-8?q?=D0=90?=» истекает 3 декабря 2026 " + "длинное название " * 12,
        'Project "' + "x" * 200 + '" expires on 1 January 2027',
    ],
)
def test_any_subject_leaves_as_one_header_line_and_reads_back_as_given(subject: str) -> None:
    channel = EmailChannel(Settings(smtp_from="ARV <no-reply@arv.local>"))
    message = RenderedMessage(subject, "text", "<p>text</p>")
    raw = channel.build("owner@prints.example", message, delivery_id=1).as_bytes(policy=email.policy.SMTP)
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert received["Subject"] == messages.one_line(subject)
    assert "\r" not in received["Subject"] and "\n" not in received["Subject"]
    headers = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(line.startswith((b" ", b"\t")) or b":" in line for line in headers)
