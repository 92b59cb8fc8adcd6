"""Times the periodic passes on PostgreSQL at a million projects, beside the same passes done the naive way.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, user postgres, or ARV_TEST_POSTGRES_URL):

    .venv/bin/python benchmarks/periodic.py [--projects 1000000] [--schedules 100000] [--arv-runs 3]
                                            [--naive-sample 0]

It creates its own database (dropped at the end) and bulk-loads it with COPY: `--projects` projects in
1,000 companies, one AR content each; 5% of the projects expire within their warning window (7, 14 or
30 days), 1% are active but past their expiry date, the rest expire later. The first `--schedules`
contents have three videos and a rotation schedule (daily, weekly, monthly, cron and random, in eight
time zones); 10% of the schedules are due.

Each pass runs on the same data in the same run, each time in a transaction that is rolled back
afterwards: `--arv-runs` times as ARV does it (arv.services.expiry and arv.services.rotation: a few
set-based statements; the median is reported, with the best) and once the naive way (load the
candidate rows, loop in Python, one statement per row per change, through the same SQLAlchemy
engine). Both must change the same number of rows. Then each ARV pass is committed and run a second
time, when there is nothing left to change. The machine's load average is printed beside each pass:
on a shared machine other processes' work is in these figures.

`--naive-sample N` runs the naive passes on N candidate rows only and extrapolates their time to the
full set; the table then says so on every such line. The default (0) runs them on the full set.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.servers import postgres_database  # noqa: E402

from arv.db.migrate import upgrade_database  # noqa: E402
from arv.db.models import (  # noqa: E402
    ARContent,
    Company,
    Notification,
    Project,
    Video,
    VideoRotationSchedule,
)
from arv.db.session import make_engine  # noqa: E402
from arv.services import expiry, rotation  # noqa: E402

COMPANIES = 1_000
VIDEOS_PER_ROTATING_CONTENT = 3
NOTIFY_DAYS = (7, 14, 30)
ZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/Moscow",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Asia/Kolkata",
)
CRON_EXPRESSIONS = ("0 9 * * 1-5", "*/15 * * * *", "30 18 * * 6", "0 0 1 * *")
TIMES_OF_DAY = ("00:00", "06:30", "09:00", "12:00", "18:45", "23:59")
GOAL_SECONDS = 5.0
GOAL_SPEEDUP = 20.0


# ---- bulk load ----------------------------------------------------------------------------------


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _copy(raw, table: str, columns: str, lines: Iterator[str]) -> None:  # type: ignore[no-untyped-def]
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        chunk = io.StringIO()
        for count, line in enumerate(lines, 1):
            chunk.write(line)
            if count % 50_000 == 0:
                copy.write(chunk.getvalue())
                chunk = io.StringIO()
        copy.write(chunk.getvalue())


@dataclass(frozen=True)
class Expected:
    warnings: int
    expired: int
    due_schedules: int


def load(engine: Engine, *, projects: int, schedules: int, now: datetime) -> Expected:
    rng = random.Random(20270310)
    created = _ts(now - timedelta(days=400))
    warnings = expired = due = 0

    def project_lines() -> Iterator[str]:
        nonlocal warnings, expired
        for i in range(1, projects + 1):
            days = NOTIFY_DAYS[i % 3]
            kind = i % 100
            if kind == 0:  # 1%: active, past expiry
                expires = now - timedelta(minutes=rng.uniform(1, 4 * 24 * 60))
                expired += 1
            elif kind <= 5:  # 5%: inside the warning window
                expires = now + timedelta(days=rng.uniform(0.01, days - 0.01))
                warnings += 1
            else:  # the rest: later than the window
                expires = now + timedelta(days=days + rng.uniform(0.01, 700))
            company = 1 + i % COMPANIES
            yield f"{i}\t{company}\tProject {i}\tactive\t{_ts(expires)}\t{days}\t{created}\t{created}\n"

    def content_lines() -> Iterator[str]:
        for i in range(1, projects + 1):
            company = 1 + i % COMPANIES
            yield (
                f"{i}\t{company}\t{i}\tPortrait {i}\t{uuid.UUID(int=i)}\tt\timages/{i}.jpg\timage/jpeg"
                f"\t1200\t1600\tready\t{created}\t{created}\n"
            )

    def video_lines() -> Iterator[str]:
        for content in range(1, schedules + 1):
            for k in range(VIDEOS_PER_ROTATING_CONTENT):
                video = (content - 1) * VIDEOS_PER_ROTATING_CONTENT + k + 1
                yield f"{video}\t{content}\tvideos/{video}.mp4\tvideo/mp4\t1000000\t{created}\n"

    def schedule_lines() -> Iterator[str]:
        nonlocal due
        kinds = rotation.ROTATION_TYPES
        for content in range(1, schedules + 1):
            kind = kinds[content % len(kinds)]
            zone = ZONES[content % len(ZONES)]
            time_of_day = TIMES_OF_DAY[content % len(TIMES_OF_DAY)]
            day_of_week = str(content % 7) if kind == "weekly" else "\\N"
            day_of_month = str(1 + content % 31) if kind == "monthly" else "\\N"
            cron = CRON_EXPRESSIONS[content % len(CRON_EXPRESSIONS)] if kind == "cron" else "\\N"
            local_time = "\\N" if kind == "cron" else time_of_day
            first = (content - 1) * VIDEOS_PER_ROTATING_CONTENT + 1
            sequence = [first + k for k in range(VIDEOS_PER_ROTATING_CONTENT)]
            if content % 10 == 0:  # 10% due
                upcoming = now - timedelta(seconds=rng.uniform(1, 2 * 86_400))
                due += 1
            else:
                upcoming = now + timedelta(seconds=rng.uniform(60, 30 * 86_400))
            yield (
                f"{content}\t{content}\t{kind}\t{local_time}"
                f"\t{day_of_week}\t{day_of_month}\t{cron}\t{zone}\t{sequence}\t0\t{_ts(upcoming)}\tt"
                f"\t{created}\t{created}\n"
            )

    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        _copy(
            driver,
            "companies",
            "id, name, contact_email, language, created_at",
            (
                f"{c}\tCompany {c}\towner{c}@studio.test\t{'ru' if c % 4 == 0 else 'en'}\t{created}\n"
                for c in range(1, COMPANIES + 1)
            ),
        )
        _copy(
            driver,
            "projects",
            "id, company_id, name, status, expires_at, notify_before_expiry_days, created_at, updated_at",
            project_lines(),
        )
        _copy(
            driver,
            "ar_contents",
            "id, company_id, project_id, title, unique_id, is_active, image_key, image_content_type,"
            " image_width, image_height, marker_status, created_at, updated_at",
            content_lines(),
        )
        _copy(
            driver,
            "videos",
            "id, ar_content_id, storage_key, content_type, size_bytes, created_at",
            video_lines(),
        )
        _copy(
            driver,
            "video_rotation_schedules",
            "id, ar_content_id, rotation_type, time_of_day, day_of_week, day_of_month, cron_expression,"
            " timezone, video_sequence, current_index, next_rotation_at, is_active, created_at, updated_at",
            schedule_lines(),
        )
        with driver.cursor() as cursor:
            cursor.execute(
                "UPDATE ar_contents SET active_video_id = (id - 1) * %s + 1 WHERE id <= %s",
                (VIDEOS_PER_ROTATING_CONTENT, schedules),
            )
            for table in ("companies", "projects", "ar_contents", "videos", "video_rotation_schedules"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
        driver.commit()
        driver.autocommit = True
        with driver.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        driver.autocommit = False
    finally:
        raw.close()
    return Expected(warnings, expired, due)


# ---- the naive way: load rows, loop, one statement per row --------------------------------------


def naive_warnings(session: Session, now: datetime, sample: int) -> int:
    rows = session.execute(
        select(
            Project.id,
            Project.company_id,
            Project.name,
            Project.expires_at,
            Project.notify_before_expiry_days,
        ).where(Project.status == "active", Project.expires_at > now)
    ).all()
    created = 0
    considered = 0
    for row in rows:
        if not (
            row.notify_before_expiry_days > 0
            and row.expires_at - timedelta(days=row.notify_before_expiry_days) <= now
        ):
            continue
        considered += 1
        if sample and considered > sample:
            break
        key = expiry.dedupe_key("expiry_warning", row.id, row.expires_at)
        if session.execute(select(Notification.id).where(Notification.dedupe_key == key)).first():
            continue
        language = session.execute(select(Company.language).where(Company.id == row.company_id)).scalar_one()
        when = row.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        session.execute(
            insert(Notification).values(
                company_id=row.company_id,
                notification_type="expiry_warning",
                project_id=row.id,
                subject=f'Project "{row.name}" expires on {when}',
                message=f"language {language}",
                payload={"project_id": row.id, "project_name": row.name, "expires_at": when},
                dedupe_key=key,
                created_at=now,
            )
        )
        created += 1
    return created


def naive_deactivation(session: Session, now: datetime, sample: int) -> int:
    rows = session.execute(
        select(Project.id, Project.company_id, Project.name, Project.expires_at).where(
            Project.status == "active", Project.expires_at <= now
        )
    ).all()
    if sample:
        rows = rows[:sample]
    for row in rows:
        session.execute(update(Project).where(Project.id == row.id).values(status="expired", updated_at=now))
        contents = session.execute(select(ARContent.id).where(ARContent.project_id == row.id)).scalars().all()
        for content_id in contents:
            session.execute(
                update(ARContent).where(ARContent.id == content_id).values(is_active=False, updated_at=now)
            )
        key = expiry.dedupe_key("expired", row.id, row.expires_at)
        if not session.execute(select(Notification.id).where(Notification.dedupe_key == key)).first():
            session.execute(
                insert(Notification).values(
                    company_id=row.company_id,
                    notification_type="expired",
                    project_id=row.id,
                    subject=f'Project "{row.name}" has expired',
                    message="expired",
                    payload={"project_id": row.id},
                    dedupe_key=key,
                    created_at=now,
                )
            )
    renewed = (
        session.execute(select(Project.id).where(Project.status == "expired", Project.expires_at > now))
        .scalars()
        .all()
    )
    for project_id in renewed:
        session.execute(update(Project).where(Project.id == project_id).values(status="active"))
    return len(rows)


def naive_rotation(session: Session, now: datetime, sample: int) -> int:
    # Plain rows, not ORM objects: with 10,000 objects in the session every UPDATE would also scan the
    # identity map, and the baseline would measure that instead of the round trips.
    rows = session.execute(
        select(*(c for c in VideoRotationSchedule.__table__.c)).where(
            VideoRotationSchedule.is_active, VideoRotationSchedule.next_rotation_at <= now
        )
    ).all()
    if sample:
        rows = rows[:sample]
    chooser = random.Random(1)
    for schedule in rows:
        rule = rotation.RotationRule.of(schedule)
        index = rotation.next_index(
            schedule.rotation_type, schedule.current_index, len(schedule.video_sequence), chooser
        )
        session.execute(
            update(VideoRotationSchedule)
            .where(VideoRotationSchedule.id == schedule.id)
            .values(
                current_index=index,
                next_rotation_at=rotation.next_rotation_at(rule, now),
                last_rotated_at=now,
                updated_at=now,
            )
        )
        video_id = schedule.video_sequence[index]
        belongs = session.execute(
            select(Video.id).where(Video.id == video_id, Video.ar_content_id == schedule.ar_content_id)
        ).first()
        if belongs:
            session.execute(
                update(ARContent)
                .where(ARContent.id == schedule.ar_content_id)
                .values(active_video_id=video_id)
            )
    return len(rows)


# ---- measurement --------------------------------------------------------------------------------


def timed(engine: Engine, work: Callable[[Session], int], *, commit: bool = False) -> tuple[float, int]:
    """Seconds and rows changed by `work` in one transaction, rolled back unless `commit`."""
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        changed = work(session)
        if commit:
            session.commit()
        seconds = time.perf_counter() - started
        if not commit:
            session.rollback()
    return seconds, changed


@dataclass
class Line:
    name: str
    arv_times: list[float]
    arv_rows: int
    naive_s: float
    naive_rows: int
    naive_sampled: bool
    again_s: float
    load_average: float

    @property
    def arv_s(self) -> float:
        return statistics.median(self.arv_times)

    @property
    def speedup(self) -> float:
        return self.naive_s / self.arv_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=1_000_000)
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--arv-runs", type=int, default=3, help="runs of each ARV pass (median is reported)")
    parser.add_argument(
        "--naive-sample", type=int, default=0, help="run the naive passes on this many rows and extrapolate"
    )
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with postgres_database("arv_bench") as url:
        engine_url = url.replace("postgresql://", "postgresql+psycopg://")
        upgrade_database(engine_url)
        engine = make_engine(engine_url)
        started = time.perf_counter()
        expected = load(engine, projects=args.projects, schedules=args.schedules, now=now)
        print(
            f"loaded {args.projects:,} projects and contents, {args.schedules:,} schedules, "
            f"{args.schedules * VIDEOS_PER_ROTATING_CONTENT:,} videos with COPY in "
            f"{time.perf_counter() - started:.1f} s; expected: {expected.warnings:,} warnings, "
            f"{expected.expired:,} expiries, {expected.due_schedules:,} due schedules",
            flush=True,
        )
        passes = [
            (
                "check_expiring_projects",
                lambda s: expiry.check_expiring_projects(s, now=now).warnings_created,
                naive_warnings,
                expected.warnings,
            ),
            (
                "deactivate_expired_content",
                lambda s: expiry.deactivate_expired_content(s, now=now).projects_expired,
                naive_deactivation,
                expected.expired,
            ),
            (
                "rotate_scheduled_videos",
                lambda s: rotation.rotate_scheduled_videos(s, now=now).rotated,
                naive_rotation,
                expected.due_schedules,
            ),
        ]
        lines = []
        for name, arv_pass, naive_pass, full in passes:
            runs = [timed(engine, arv_pass) for _ in range(args.arv_runs)]
            load_during = os.getloadavg()[0]
            arv_rows = runs[0][1]
            arv_times = sorted(seconds for seconds, _ in runs)
            naive_s, naive_rows = timed(engine, lambda s, p=naive_pass: p(s, now, args.naive_sample))  # type: ignore[misc]
            sampled = bool(args.naive_sample) and naive_rows < full
            if sampled:
                naive_s *= full / max(naive_rows, 1)
            elif naive_rows != arv_rows:
                raise SystemExit(f"{name}: the naive pass changed {naive_rows} rows, ARV's {arv_rows}")
            if arv_rows != full:
                raise SystemExit(f"{name}: changed {arv_rows} rows, expected {full}")
            timed(engine, arv_pass, commit=True)
            again_s, again_rows = timed(engine, arv_pass, commit=True)
            assert again_rows == 0, f"{name} changed {again_rows} rows on its second run"
            line = Line(name, arv_times, arv_rows, naive_s, naive_rows, sampled, again_s, load_during)
            lines.append(line)
            each = ", ".join(f"{t:.2f}" for t in arv_times)
            print(f"  {name}: ARV {line.arv_s:.2f} s (runs: {each}), naive {naive_s:.2f} s", flush=True)
        engine.dispose()

    print()
    load_1, load_5, _ = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, load average {load_1:.1f} (1 min), {load_5:.1f} (5 min) "
        f"at the end (the machine is shared: other processes' load is in these figures)"
    )
    print(f"PostgreSQL, {args.projects:,} projects, {args.schedules:,} rotation schedules (seconds per pass)")
    print()
    print(
        f"| pass | rows changed | ARV (set-based), median of {args.arv_runs} (best) | naive (row by row) "
        "| speed-up | ARV, second run (nothing to do) | load average (2 cores) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for line in lines:
        naive = f"{line.naive_s:.2f}"
        if line.naive_sampled:
            naive += f" (extrapolated from {line.naive_rows:,} rows)"
        print(
            f"| {line.name} | {line.arv_rows:,} | {line.arv_s:.2f} ({min(line.arv_times):.2f}) | {naive} "
            f"| {line.speedup:.0f}x | {line.again_s:.2f} | {line.load_average:.0f} |"
        )
    print()
    met = all(line.arv_s <= GOAL_SECONDS and line.speedup >= GOAL_SPEEDUP for line in lines)
    print(
        f"goal (each pass <= {GOAL_SECONDS:g} s and >= {GOAL_SPEEDUP:g}x faster than naive): "
        + ("met" if met else "NOT met")
    )


if __name__ == "__main__":
    main()
