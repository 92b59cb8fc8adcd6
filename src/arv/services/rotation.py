"""Video rotation: when a schedule's next slot falls, in its own time zone, and the pass that rotates videos.

A schedule's slots are wall-clock times in its zone (09:00 Europe/Berlin every day, the last day of
each month, a cron expression...). `next_rotation_at` turns them into UTC instants:

- a wall time that happens twice (clocks go back) counts once, at its first occurrence;
- a wall time that does not exist (clocks jump forward over it) happens at the moment of the jump;
- the next slot is always computed from the schedule and the current time, never by adding a period
  to the previous run, so it never drifts with the task's timing, and a pass that comes late (Beat
  was down for a day) rotates once and moves on to the first slot after now.
"""

from __future__ import annotations

import calendar
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from sqlalchemy import CursorResult, Integer, bindparam, select, text, update
from sqlalchemy.orm import Session

from arv.db.models import UTCDateTime, VideoRotationSchedule, utcnow

log = structlog.get_logger(__name__)

ROTATION_TYPES = ("daily", "weekly", "monthly", "cron", "random")
SEQUENTIAL_TYPES = ("daily", "weekly", "monthly", "cron")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Slots are searched from this long before `after` in wall-clock time, so a slot that a daylight-saving
# change moved (by at most two hours anywhere in the tz database) is never stepped over.
_WALL_CLOCK_MARGIN = timedelta(hours=3)
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
# Bounds checked before any parsing, so neither a request nor a stored row can make it slow: the
# stored columns are as long. A zone name is words of the tz database joined by "/", never "..".
MAX_ZONE_NAME = 64
MAX_CRON = 120
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class InvalidRotationRule(ValueError):
    """A schedule that cannot be run; the message says what to change."""


class RuleFields(Protocol):
    """The stored or submitted fields of a schedule's rule: a schedule, a row of one, a request."""

    @property
    def rotation_type(self) -> str: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def time_of_day(self) -> str | None: ...
    @property
    def day_of_week(self) -> int | None: ...
    @property
    def day_of_month(self) -> int | None: ...
    @property
    def cron_expression(self) -> str | None: ...


@dataclass(frozen=True)
class RotationRule:
    """When a schedule rotates.

    rotation_type: daily, weekly, monthly, cron or random; zone: the time zone its wall-clock times
    are in; time_of_day: the local time of the daily, weekly, monthly and (without a cron expression)
    random slots; day_of_week: 0 (Monday) to 6 (Sunday) for weekly; day_of_month: 1 to 31 for
    monthly, a month without that day using its last day; cron_expression: five cron fields in the
    zone's local time, for cron (and optionally random).
    """

    rotation_type: str
    zone: ZoneInfo
    time_of_day: time = time(0, 0)
    day_of_week: int | None = None
    day_of_month: int | None = None
    cron_expression: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        rotation_type: str,
        timezone: str | None = "UTC",
        time_of_day: str | None = None,
        day_of_week: int | None = None,
        day_of_month: int | None = None,
        cron_expression: str | None = None,
    ) -> RotationRule:
        """A rule from the stored or submitted fields; fields the type does not use are dropped."""
        if rotation_type not in ROTATION_TYPES:
            raise InvalidRotationRule(
                f"rotation_type must be one of {', '.join(ROTATION_TYPES)}, not {rotation_type!r}"
            )
        zone = parse_zone(timezone or "UTC")
        uses_cron = rotation_type == "cron" or (rotation_type == "random" and bool(cron_expression))
        if uses_cron:
            if not cron_expression:
                raise InvalidRotationRule("a cron schedule needs cron_expression, e.g. '0 9 * * 1-5'")
            return cls(rotation_type, zone, cron_expression=parse_cron(cron_expression))
        local_time = parse_time_of_day(time_of_day) if time_of_day else time(0, 0)
        if rotation_type == "weekly":
            if day_of_week is None or not 0 <= day_of_week <= 6:
                raise InvalidRotationRule("a weekly schedule needs day_of_week from 0 (Monday) to 6 (Sunday)")
            return cls(rotation_type, zone, local_time, day_of_week=day_of_week)
        if rotation_type == "monthly":
            if day_of_month is None or not 1 <= day_of_month <= 31:
                raise InvalidRotationRule(
                    "a monthly schedule needs day_of_month from 1 to 31 (a shorter month uses its last day)"
                )
            return cls(rotation_type, zone, local_time, day_of_month=day_of_month)
        return cls(rotation_type, zone, local_time)

    @classmethod
    def of(cls, fields: RuleFields) -> RotationRule:
        return cls.parse(
            rotation_type=fields.rotation_type,
            timezone=fields.timezone,
            time_of_day=fields.time_of_day,
            day_of_week=fields.day_of_week,
            day_of_month=fields.day_of_month,
            cron_expression=fields.cron_expression,
        )

    @property
    def time_of_day_text(self) -> str | None:
        if self.cron_expression:
            return None
        return self.time_of_day.strftime("%H:%M:%S" if self.time_of_day.second else "%H:%M")


def parse_zone(name: str) -> ZoneInfo:
    unknown = InvalidRotationRule(
        f"timezone {name[:MAX_ZONE_NAME]!r} is not a known IANA time zone name "
        "(e.g. 'Europe/Berlin' or 'UTC')"
    )
    if len(name) > MAX_ZONE_NAME or not _ZONE_NAME.match(name):
        raise unknown
    try:
        return ZoneInfo(name)
    # A folder of the tz database ("America") is IsADirectoryError, other odd names other OSErrors.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise unknown from None


def parse_time_of_day(value: str) -> time:
    match = _TIME_OF_DAY.match(value.strip())
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour < 24 and minute < 60 and second < 60:
            return time(hour, minute, second)
    raise InvalidRotationRule(f"time_of_day must be HH:MM in 24-hour time (e.g. '09:30'), not {value!r}")


def parse_cron(expression: str) -> str:
    if len(expression) > MAX_CRON:
        raise InvalidRotationRule(
            f"cron_expression is {len(expression)} characters long; five cron fields fit in {MAX_CRON}"
        )
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise InvalidRotationRule(
            f"cron_expression {expression!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 9 * * 1-5'"
        )
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError):
        raise InvalidRotationRule(f"cron_expression {expression!r} never matches a real date") from None
    return expression


def _wall_clock_slots(rule: RotationRule, start: datetime) -> Iterator[datetime]:
    """The rule's local (naive) slot times from `start` on, in increasing order."""
    if rule.cron_expression:
        slots = croniter(rule.cron_expression, start)
        while True:
            yield slots.get_next(datetime)
    day = start.date()
    if rule.rotation_type == "monthly":
        assert rule.day_of_month is not None
        year, month = day.year, day.month
        while True:
            last = calendar.monthrange(year, month)[1]
            yield datetime.combine(date(year, month, min(rule.day_of_month, last)), rule.time_of_day)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    step = timedelta(days=1)
    if rule.rotation_type == "weekly":
        assert rule.day_of_week is not None
        day += timedelta(days=(rule.day_of_week - day.weekday()) % 7)
        step = timedelta(days=7)
    while True:
        yield datetime.combine(day, rule.time_of_day)
        day += step


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time: its first occurrence, or the jump that skips it."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap fold=0 reads the time with the offset from before the jump (a later instant) and fold=1
    # with the offset after it (an earlier one); the jump lies between them, on a whole second.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).replace(tzinfo=None) > wall:
            after = middle
        else:
            before = middle
    return after


def next_rotation_at(rule: RotationRule, after: datetime) -> datetime:
    """The first slot of `rule` strictly after the instant `after`, in UTC."""
    if after.tzinfo is None:
        raise ValueError("next_rotation_at needs an aware datetime")
    start = after.astimezone(rule.zone).replace(tzinfo=None) - _WALL_CLOCK_MARGIN
    # Slot instants never decrease as wall times increase (repeated times count once, skipped ones
    # at the jump), so the first one past `after` is the earliest.
    for wall in _wall_clock_slots(rule, start):
        instant = local_instant(wall, rule.zone)
        if instant > after:
            return instant
    raise AssertionError("slot iterators never end")


def next_index(rotation_type: str, current_index: int, length: int, chooser: random.Random) -> int:
    """The position in the video sequence after a rotation: the next one in turn, or for `random` any
    other position (never the same video twice in a row when there are two or more)."""
    if length <= 1:
        return 0
    if rotation_type != "random":
        return (current_index + 1) % length
    pick = chooser.randrange(length - 1)
    return pick + 1 if pick >= current_index % length else pick


@dataclass(frozen=True)
class RotationPassResult:
    rotated: int
    contents_switched: int

    def to_dict(self) -> dict[str, int]:
        return {"rotated": self.rotated, "contents_switched": self.contents_switched}


_DUE_COLUMNS = (
    VideoRotationSchedule.id,
    VideoRotationSchedule.ar_content_id,
    VideoRotationSchedule.rotation_type,
    VideoRotationSchedule.timezone,
    VideoRotationSchedule.time_of_day,
    VideoRotationSchedule.day_of_week,
    VideoRotationSchedule.day_of_month,
    VideoRotationSchedule.cron_expression,
    VideoRotationSchedule.video_sequence,
    VideoRotationSchedule.current_index,
)

# One statement per table writes every rotation of the pass, from a JSON array of rows.
_UPDATE_SCHEDULES = {
    "postgresql": """
        UPDATE video_rotation_schedules AS s
        SET current_index = v.current_index, next_rotation_at = v.next_rotation_at,
            last_rotated_at = :now, updated_at = :now
        FROM json_to_recordset(CAST(:rows AS json))
             AS v(id integer, current_index integer, next_rotation_at timestamptz)
        WHERE s.id = v.id AND s.is_active AND s.next_rotation_at <= :now
        RETURNING s.id""",
    "sqlite": """
        UPDATE video_rotation_schedules AS s
        SET current_index = v.current_index, next_rotation_at = v.next_rotation_at,
            last_rotated_at = :now, updated_at = :now
        FROM (SELECT json_extract(value, '$.id') AS id,
                     json_extract(value, '$.current_index') AS current_index,
                     json_extract(value, '$.next_rotation_at') AS next_rotation_at
              FROM json_each(:rows)) AS v
        WHERE s.id = v.id AND s.is_active AND s.next_rotation_at <= :now
        RETURNING id""",
}
# The video must still belong to the content: a deleted video is skipped, not shown elsewhere.
_SWITCH_VIDEOS = {
    "postgresql": """
        UPDATE ar_contents AS c SET active_video_id = v.video_id, updated_at = :now
        FROM json_to_recordset(CAST(:rows AS json)) AS v(content_id integer, video_id integer)
        WHERE c.id = v.content_id AND c.active_video_id IS DISTINCT FROM v.video_id
          AND EXISTS (SELECT 1 FROM videos WHERE videos.id = v.video_id AND videos.ar_content_id = c.id)""",
    "sqlite": """
        UPDATE ar_contents AS c SET active_video_id = v.video_id, updated_at = :now
        FROM (SELECT json_extract(value, '$.content_id') AS content_id,
                     json_extract(value, '$.video_id') AS video_id
              FROM json_each(:rows)) AS v
        WHERE c.id = v.content_id AND c.active_video_id IS NOT v.video_id
          AND EXISTS (SELECT 1 FROM videos WHERE videos.id = v.video_id AND videos.ar_content_id = c.id)""",
}


def _stored_instant(dialect: str, instant: datetime) -> str:
    """`instant` as the JSON payload carries it: what each backend's timestamp column holds."""
    if dialect == "sqlite":
        # The text SQLAlchemy stores in SQLite: naive UTC with microseconds, so it compares as text.
        return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return instant.isoformat()


def rotate_scheduled_videos(
    session: Session, *, now: datetime | None = None, chooser: random.Random | None = None
) -> RotationPassResult:
    """Rotate every active schedule whose `next_rotation_at` has come, once, and set its next slot.

    Three statements whatever the number of due schedules: read them (locked, skipping rows another
    worker holds, on PostgreSQL), write every schedule, switch every content's video. Only the next
    slot is computed in Python, once per distinct rule.
    A schedule whose stored rule cannot run any more is stopped (one more statement, only then).
    """
    now = now or utcnow()
    chooser = chooser or random.Random()
    dialect = session.get_bind().dialect.name
    due = session.execute(
        select(*_DUE_COLUMNS)
        .where(VideoRotationSchedule.is_active, VideoRotationSchedule.next_rotation_at <= now)
        .order_by(VideoRotationSchedule.id)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        return RotationPassResult(0, 0)
    next_slots: dict[tuple[Any, ...], datetime | InvalidRotationRule] = {}
    schedule_rows: list[dict[str, Any]] = []
    video_by_schedule: dict[int, dict[str, int]] = {}
    unusable: list[int] = []
    for row in due:
        key = (
            row.rotation_type,
            row.timezone,
            row.time_of_day,
            row.day_of_week,
            row.day_of_month,
            row.cron_expression,
        )
        if key not in next_slots:
            try:
                next_slots[key] = next_rotation_at(RotationRule.of(row), now)
            except InvalidRotationRule as exc:
                next_slots[key] = exc
        slot = next_slots[key]
        if isinstance(slot, InvalidRotationRule):
            # A rule stored before today's checks (or written around the API): stopped, not retried
            # every pass, and it stops no other schedule.
            log.warning("rotation.unusable_schedule", schedule_id=row.id, error=str(slot)[:200])
            unusable.append(row.id)
            continue
        sequence: Sequence[int] = row.video_sequence or []
        index = next_index(row.rotation_type, row.current_index, len(sequence), chooser)
        schedule_rows.append(
            {
                "id": row.id,
                "current_index": index,
                "next_rotation_at": _stored_instant(dialect, slot),
            }
        )
        if sequence:
            video_by_schedule[row.id] = {"content_id": row.ar_content_id, "video_id": int(sequence[index])}
    if unusable:
        session.execute(
            update(VideoRotationSchedule)
            .where(VideoRotationSchedule.id.in_(unusable))
            .values(is_active=False, updated_at=now)
        )
    if not schedule_rows:
        return RotationPassResult(0, 0)
    when = bindparam("now", now, type_=UTCDateTime())
    rotated = (
        session.execute(
            text(_UPDATE_SCHEDULES[dialect])
            .bindparams(when, rows=json.dumps(schedule_rows))
            .columns(id=Integer)
        )
        .scalars()
        .all()
    )
    switches = [video_by_schedule[i] for i in rotated if i in video_by_schedule]
    switched = 0
    if switches:
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            text(_SWITCH_VIDEOS[dialect]).bindparams(when, rows=json.dumps(switches))
        )
        switched = result.rowcount
    return RotationPassResult(len(rotated), switched)


# The words of `describe_schedule`, per language. Weekday names are indexed from 0 (Monday), as
# `day_of_week` is: "every <day>" takes the English name, Russian an accusative with the matching
# "every" ("каждую среду"); a list of days reads "on Mondays and Fridays" / "по понедельникам и пятницам".
_SCHEDULE_WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "every_day": "every day",
        "every_weekday": WEEKDAYS,
        "every_weekday_prefix": ("every",) * 7,
        "on_weekdays": ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"),
        "on_weekdays_prefix": "on",
        "working_days": "every weekday (Monday to Friday)",
        "day_of_month": "on {days} of every month",
        "day_of_month_one": "day {day}",
        "day_of_month_many": "days {days}",
        "last_day_note": " (the last day in shorter months)",
        "at": "at {times}",
        "every_hour": "every hour at :{minutes}",
        "cron": "on the cron schedule '{expression}'",
        "and": "and",
        "random": "A random other video {when}",
    },
    "ru": {
        "every_day": "каждый день",
        "every_weekday": ("понедельник", "вторник", "среду", "четверг", "пятницу", "субботу", "воскресенье"),
        "every_weekday_prefix": ("каждый", "каждый", "каждую", "каждый", "каждую", "каждую", "каждое"),
        "on_weekdays": (
            "понедельникам",
            "вторникам",
            "средам",
            "четвергам",
            "пятницам",
            "субботам",
            "воскресеньям",
        ),
        "on_weekdays_prefix": "по",
        "working_days": "по будним дням (с понедельника по пятницу)",
        "day_of_month": "{days} каждого месяца",
        "day_of_month_one": "{day}-го числа",
        "day_of_month_many": "{days} числа",
        "last_day_note": " (в более коротких месяцах — в последний день)",
        "at": "в {times}",
        "every_hour": "каждый час в :{minutes}",
        "cron": "по расписанию cron '{expression}'",
        "and": "и",
        "random": "Случайное другое видео {when}",
    },
}
SCHEDULE_LANGUAGES = tuple(_SCHEDULE_WORDS)
# A cron schedule with more slots a day than this is read out as its expression, not as a list of times.
_MAX_TIMES_IN_WORDS = 6


def describe_schedule(schedule: RuleFields, language: str) -> str:
    """The schedule in words for the console, in `language` ("en" or "ru"; any other reads English):
    "Every day at 09:00 (Europe/Moscow)", "A random other video every Monday at 09:00 (UTC)".

    A cron expression is read out in plain words where it is a daily, weekly, monthly or hourly
    pattern, and quoted as it is otherwise. Raises InvalidRotationRule for a schedule that cannot run.
    """
    words = _SCHEDULE_WORDS.get(language, _SCHEDULE_WORDS["en"])
    rule = RotationRule.of(schedule)
    when = (
        _cron_in_words(rule.cron_expression, words) if rule.cron_expression else _slot_in_words(rule, words)
    )
    zone = f"({rule.zone.key})"
    if rule.rotation_type == "random":
        return f"{words['random'].format(when=when)} {zone}"
    return f"{when[0].upper()}{when[1:]} {zone}"


def _listed(items: Sequence[str], words: dict[str, Any]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {words['and']} {items[-1]}"


def _every_weekday(day: int, words: dict[str, Any]) -> str:
    return f"{words['every_weekday_prefix'][day]} {words['every_weekday'][day]}"


def _days_of_month(days: Sequence[int], words: dict[str, Any], *, shorter_months_use_last: bool) -> str:
    if len(days) == 1:
        named = words["day_of_month_one"].format(day=days[0])
    else:
        named = words["day_of_month_many"].format(days=_listed([str(d) for d in days], words))
    note = words["last_day_note"] if shorter_months_use_last and max(days) > 28 else ""
    return words["day_of_month"].format(days=named) + note


def _at(times: Sequence[time], words: dict[str, Any]) -> str:
    return words["at"].format(times=_listed([t.strftime("%H:%M") for t in times], words))


def _slot_in_words(rule: RotationRule, words: dict[str, Any]) -> str:
    at = words["at"].format(times=rule.time_of_day_text)
    if rule.rotation_type == "weekly":
        assert rule.day_of_week is not None
        return f"{_every_weekday(rule.day_of_week, words)} {at}"
    if rule.rotation_type == "monthly":
        assert rule.day_of_month is not None
        return f"{_days_of_month([rule.day_of_month], words, shorter_months_use_last=True)} {at}"
    return f"{words['every_day']} {at}"


def _cron_in_words(expression: str, words: dict[str, Any]) -> str:
    """A plain reading of a cron expression, from croniter's own expansion of it (so the words say
    what croniter runs), or the expression quoted when it is no simple pattern."""
    quoted = words["cron"].format(expression=expression)
    (minutes, hours, days, months, weekdays), nth_weekdays = croniter.expand(expression)
    fields = (minutes, hours, days, months, weekdays)
    if nth_weekdays or months != ["*"] or any(v != "*" and not isinstance(v, int) for f in fields for v in f):
        return quoted  # "L", "1#2", a set of months: no short reading
    if days != ["*"] and weekdays != ["*"]:
        return quoted  # cron's either-day rule reads badly in words
    if hours == ["*"]:
        if minutes == ["*"] or days != ["*"] or weekdays != ["*"] or len(minutes) > 1:
            return quoted
        return words["every_hour"].format(minutes=f"{minutes[0]:02d}")
    if minutes == ["*"] or len(minutes) * len(hours) > _MAX_TIMES_IN_WORDS:
        return quoted
    at = _at(sorted(time(h, m) for h in hours for m in minutes), words)
    if days != ["*"]:
        # Unlike a monthly schedule, cron skips the months that lack the day.
        return f"{_days_of_month(days, words, shorter_months_use_last=False)} {at}"
    if weekdays == ["*"]:
        return f"{words['every_day']} {at}"
    # croniter counts Sunday as 0; WEEKDAYS starts on Monday.
    ours = sorted((day - 1) % 7 for day in weekdays)
    if ours == [0, 1, 2, 3, 4]:
        return f"{words['working_days']} {at}"
    if len(ours) == 1:
        return f"{_every_weekday(ours[0], words)} {at}"
    return f"{words['on_weekdays_prefix']} {_listed([words['on_weekdays'][d] for d in ours], words)} {at}"


def next_rotation_times(
    schedule: RuleFields, *, count: int = 5, after: datetime | None = None
) -> list[datetime]:
    """The schedule's next `count` slots after `after` (default: now), in UTC, oldest first: each one
    `next_rotation_at` of the one before, as the rotation pass would set them one after another.

    Raises InvalidRotationRule for a schedule that cannot run.
    """
    rule = RotationRule.of(schedule)
    instant = after or utcnow()
    times = []
    for _ in range(count):
        instant = next_rotation_at(rule, instant)
        times.append(instant)
    return times
