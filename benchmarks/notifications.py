"""Notifications benchmark on PostgreSQL + Redis: 10,000 pending notifications drained by real worker
processes against a local SMTP server (aiosmtpd) and a local Telegram Bot API.

The notifications are written set-based (as the periodic passes write them), fanned out to e-mail
for every company and Telegram for some, and sent by `notifications` workers. Prints messages per
second and the highest rates the Telegram server saw, overall and per chat (the limits: 30/s per
bot, 1/s per chat), beside two baselines measured in the same run: a bare smtplib loop against the
same mail server, and the floor the Telegram rate limit puts on the run's duration.

    .venv/bin/python -m benchmarks.notifications [--notifications 10000] [--companies 1000]
        [--telegram-every 4] [--workers 2] [--concurrency 8] [--smtp-rate 300]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.mail_server import smtp_server  # noqa: E402
from tests.support.platform import reset_caches, wait_until, worker_pool  # noqa: E402
from tests.support.servers import REDIS_URL, postgres_database  # noqa: E402
from tests.support.telegram_server import fake_bot_api_process  # noqa: E402


def bare_smtp_rate(host: str, port: int, count: int) -> float:
    """Messages a second one process sends with a new SMTP session per message (ARV's way), no
    database or broker involved."""
    started = time.perf_counter()
    for n in range(count):
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = (
            "bench@arv.local",
            f"baseline{n}@bench.example",
            "baseline",
        )
        mail.set_content("baseline message")
        with smtplib.SMTP(host, port) as smtp:
            smtp.send_message(mail)
    return count / (time.perf_counter() - started)


def redis_url_with_db(db: int) -> str:
    return REDIS_URL.rsplit("/", 1)[0] + f"/{db}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--companies", type=int, default=1_000)
    parser.add_argument("--telegram-every", type=int, default=4, help="one company in N has a Telegram chat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--smtp-rate", type=float, default=300.0, help="ARV_SMTP_RATE_PER_S for the run")
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("ARV_BENCH_REDIS_DB", "11")))
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="arv-bench-notify-"))
    broker = redis_url_with_db(args.redis_db)
    servers = postgres_database("arv_bench_notify"), smtp_server(), fake_bot_api_process()
    with servers[0] as db_url, servers[1] as mail, servers[2] as remote_bot:
        env = {
            "ARV_DATA_DIR": str(workdir / "data"),
            "ARV_DATABASE_URL": db_url,
            "ARV_BROKER_URL": broker,
            "ARV_RESULT_BACKEND": broker,
            "ARV_REDIS_KEY_PREFIX": f"arvbench-notify-{uuid.uuid4().hex[:8]}:",
            "ARV_LOG_LEVEL": "WARNING",
            "ARV_JSON_LOGS": "true",
            "ARV_SECRET_KEY": "bench",
            "ARV_SMTP_HOST": mail.host,
            "ARV_SMTP_PORT": str(mail.port),
            "ARV_SMTP_RATE_PER_S": str(args.smtp_rate),
            "ARV_TELEGRAM_BOT_TOKEN": remote_bot.token,
            "ARV_TELEGRAM_API_URL": remote_bot.url,
        }
        os.environ.update(env)
        reset_caches()
        from sqlalchemy import func, select, text

        from arv.config import get_settings
        from arv.db.migrate import upgrade_database
        from arv.db.models import NotificationDelivery
        from arv.db.session import session_scope
        from arv.services.notify import outbox

        settings = get_settings()
        upgrade_database()
        with session_scope() as session:
            # Companies, one project each, then the notifications in one INSERT ... SELECT, spread over
            # the companies round-robin, exactly as a periodic pass writes them: no deliveries yet.
            session.execute(
                text(
                    "INSERT INTO companies (name, contact_email, telegram_chat_id, language, created_at)"
                    " SELECT 'Studio ' || n, 'studio' || n || '@bench.example',"
                    " CASE WHEN n % :every = 0 THEN (100000 + n)::text END,"
                    " CASE WHEN n % 2 = 0 THEN 'ru' ELSE 'en' END, now()"
                    " FROM generate_series(1, :companies) AS n"
                ),
                {"companies": args.companies, "every": args.telegram_every},
            )
            session.execute(
                text(
                    "INSERT INTO projects (company_id, name, status, expires_at, notify_before_expiry_days,"
                    " created_at, updated_at)"
                    " SELECT id, 'Album of ' || name, 'active', now() + interval '5 days', 7, now(), now()"
                    " FROM companies"
                )
            )
            session.execute(
                text(
                    "INSERT INTO notifications (company_id, notification_type, project_id, subject, message,"
                    " payload, dedupe_key, created_at)"
                    " SELECT p.company_id, 'expiry_warning', p.id, '', '',"
                    " json_build_object('language', c.language, 'company_name', c.name,"
                    " 'project_name', p.name, 'expires_at',"
                    " to_char(timezone('UTC', p.expires_at), 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"'),"
                    " 'content_title', NULL, 'portrait_id', NULL, 'reason', NULL),"
                    " 'bench:' || n, now()"
                    " FROM generate_series(0, :count - 1) AS n"
                    " JOIN projects p ON p.id = 1 + n % :companies JOIN companies c ON c.id = p.company_id"
                ),
                {"count": args.notifications, "companies": args.companies},
            )
        print(
            f"baseline: bare smtplib loop, one process, new session per message: "
            f"{bare_smtp_rate(mail.host, mail.port, 500):.0f} msg/s"
        )
        mail.messages.clear()

        with worker_pool(env, workdir) as pool:
            for _ in range(args.workers):
                pool.start("notifications", concurrency=args.concurrency)
            started = time.perf_counter()
            with session_scope() as session:
                deliveries = outbox.fan_out_notifications(session)
            fanned_out_s = time.perf_counter() - started  # includes publishing every wake-up after commit
            telegram_total = sum(
                1 for n in range(args.notifications) if (1 + n % args.companies) % args.telegram_every == 0
            )

            def settled() -> int:
                with session_scope() as session:
                    return int(
                        session.scalar(
                            select(func.count())
                            .select_from(NotificationDelivery)
                            .where(NotificationDelivery.status.in_(["sent", "failed"]))
                        )
                        or 0
                    )

            last_report = [time.perf_counter()]

            def all_settled() -> bool:
                done = settled()
                if time.perf_counter() - last_report[0] > 15:
                    print(
                        f"  ... {done}/{deliveries} deliveries settled after "
                        f"{time.perf_counter() - started:.0f} s"
                    )
                    last_report[0] = time.perf_counter()
                return done >= deliveries

            wait_until(all_settled, timeout=args.timeout, interval=0.5, what="every delivery settled")
            elapsed = time.perf_counter() - started

        bot = remote_bot.record()
        with session_scope() as session:
            by_status = dict(
                session.execute(
                    select(
                        NotificationDelivery.channel + ":" + NotificationDelivery.status, func.count()
                    ).group_by(NotificationDelivery.channel, NotificationDelivery.status)
                ).all()
            )
        email_sent = by_status.get("email:sent", 0)
        telegram_sent = by_status.get("telegram:sent", 0)
        delivery_headers = {m["X-ARV-Delivery"] for m in mail.messages}
        print(
            f"notifications: {args.notifications} for {args.companies} companies "
            f"(e-mail to all, Telegram to one in {args.telegram_every}); {deliveries} deliveries"
        )
        print(
            f"workers: {args.workers} x {args.concurrency} processes on the notifications queue, "
            f"PostgreSQL + Redis (db {args.redis_db}); SMTP limit {args.smtp_rate:.0f}/s, "
            f"Telegram limit {settings.telegram_rate_per_s:.0f}/s and 1 per "
            f"{settings.telegram_chat_interval_s} s per chat"
        )
        print(f"fan-out (deliveries + jobs written, wake-ups published): {fanned_out_s:.1f} s")
        print(
            f"drained in {elapsed:.1f} s: {(email_sent + telegram_sent) / elapsed:.1f} messages/s "
            f"({email_sent / elapsed:.1f} e-mail/s, {telegram_sent / elapsed:.1f} Telegram/s)"
        )
        print(f"deliveries by state: {by_status}")
        print(
            f"mail server received {len(mail.messages)} messages for {len(delivery_headers)} distinct "
            f"deliveries; Telegram server received {len(bot.received)} (expected {telegram_total})"
        )
        print(
            f"Telegram server: highest rate overall {bot.highest_rate_overall()} msg in any 1 s (limit 30), "
            f"per chat {bot.highest_rate_per_chat()} msg in any 1 s (limit 1), "
            f"shortest gap in one chat {bot.shortest_gap_per_chat() or 0:.3f} s; "
            f"429/4xx/5xx answers: {len(bot.refused)}"
        )
        print(
            f"baseline: the Telegram limit alone needs {telegram_total / settings.telegram_rate_per_s:.1f} s "
            f"for {telegram_total} messages; the SMTP limit {email_sent / args.smtp_rate:.1f} s"
        )
        within = bot.highest_rate_overall() <= 30 and bot.highest_rate_per_chat() <= 1
        once = (
            len(mail.messages) == len(delivery_headers) == email_sent and len(bot.received) == telegram_sent
        )
        print(
            f"within Telegram's limits: {'yes' if within else 'NO'}; "
            f"each message once: {'yes' if once else 'NO'}"
        )


if __name__ == "__main__":
    main()
