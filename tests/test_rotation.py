"""Video rotation: properties of next_rotation_at through DST, and the rotation pass on both databases."""

from __future__ import annotations

import bisect
import calendar
import random
import threading
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from arv.db.models import ARContent, VideoRotationSchedule
from arv.db.session import session_scope
from arv.services.rotation import (
    InvalidRotationRule,
    RotationRule,
    describe_schedule,
    local_instant,
    next_index,
    next_rotation_at,
    next_rotation_times,
    rotate_scheduled_videos,
)
from tests.support.records import make_company, make_content

# Zones with the awkward cases: 1-hour DST both hemispheres, 30-minute DST (Lord Howe), a DST change at
# midnight (Santiago, Havana), a day that was skipped entirely (Apia, 2011-12-30), and no DST at all.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Apia",
    "Asia/Kolkata",
]


@lru_cache
def transitions(zone_name: str, year: int) -> list[datetime]:
    """The UTC instants in `year` at which `zone_name` changes its offset (to the minute)."""
    zone = ZoneInfo(zone_name)
    found = []
    instant = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    previous = instant.astimezone(zone).utcoffset()
    while instant < end:
        following = instant + timedelta(hours=1)
        offset = following.astimezone(zone).utcoffset()
        if offset != previous:
            low, high = instant, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == previous:
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
            previous = offset
        instant = following
    return found


@st.composite
def instants_near_dst(draw: st.DrawFn, zone_name: str) -> datetime:
    """An instant within a day of one of the zone's offset changes, or anywhere in 2011-2035."""
    year = draw(st.integers(2011, 2035))
    changes = transitions(zone_name, year)
    if changes and draw(st.booleans()):
        change = draw(st.sampled_from(changes))
        return change + timedelta(seconds=draw(st.integers(-86_400, 86_400)))
    moment = datetime(year, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 365 * 86_400)))
    return moment


times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 1, 15, 30, 45, 59]))
cron_expressions = st.sampled_from(
    ["0 9 * * 1-5", "*/30 * * * *", "30 2 * * *", "0 0 1 * *", "15 1,2,3 * * 0", "0 12 29 2 *", "45 23 L * *"]
)


@st.composite
def rules(draw: st.DrawFn) -> RotationRule:
    zone = draw(st.sampled_from(ZONES))
    kind = draw(st.sampled_from(["daily", "weekly", "monthly", "cron", "random"]))
    local_time = draw(times_of_day).strftime("%H:%M")
    return RotationRule.parse(
        rotation_type=kind,
        timezone=zone,
        time_of_day=local_time,
        day_of_week=draw(st.integers(0, 6)),
        day_of_month=draw(st.integers(1, 31)),
        cron_expression=draw(cron_expressions) if kind == "cron" or draw(st.booleans()) else None,
    )


@st.composite
def rules_and_instants(draw: st.DrawFn) -> tuple[RotationRule, datetime]:
    rule = draw(rules())
    return rule, draw(instants_near_dst(rule.zone.key))


def jumped_over(rule: RotationRule, instant: datetime, wall: datetime) -> bool:
    """True when `instant` is a clock change that skipped the local time `wall`."""
    before = (instant - timedelta(seconds=1)).astimezone(rule.zone).replace(tzinfo=None)
    after = instant.astimezone(rule.zone).replace(tzinfo=None)
    return before < wall < after


def expected_wall_time(rule: RotationRule, local: datetime) -> datetime:
    """The wall time the rule asks for on the local date of a slot."""
    return datetime.combine(local.date(), rule.time_of_day)


PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(rules_and_instants())
def test_next_rotation_is_always_in_the_future(case: tuple[RotationRule, datetime]) -> None:
    rule, after = case
    upcoming = next_rotation_at(rule, after)
    assert upcoming > after
    assert upcoming.tzinfo is UTC or upcoming.utcoffset() == timedelta(0)


@PROPERTY_SETTINGS
@given(rules_and_instants())
def test_next_rotation_falls_on_the_schedules_day_and_time_in_its_zone(
    case: tuple[RotationRule, datetime],
) -> None:
    rule, after = case
    upcoming = next_rotation_at(rule, after)
    local = upcoming.astimezone(rule.zone).replace(tzinfo=None)
    if rule.cron_expression:
        wall = local if croniter.match(rule.cron_expression, local) else None
        if wall is None:
            # Only a slot the clocks jumped over may happen at another local time: at the jump.
            before = (upcoming - timedelta(seconds=1)).astimezone(rule.zone).replace(tzinfo=None)
            skipped = croniter(rule.cron_expression, before).get_next(datetime)
            assert skipped < local, f"{upcoming} ({local}) does not match {rule.cron_expression}"
        return
    wall = expected_wall_time(rule, local)
    assert local == wall or jumped_over(rule, upcoming, wall), (upcoming, local, wall)
    if rule.rotation_type == "weekly":
        assert local.weekday() == rule.day_of_week
    if rule.rotation_type == "monthly":
        assert rule.day_of_month is not None
        assert local.day == min(rule.day_of_month, calendar.monthrange(local.year, local.month)[1])


@PROPERTY_SETTINGS
@given(rules_and_instants(), st.floats(0, 1))
def test_next_rotation_does_not_drift_with_when_the_pass_runs(
    case: tuple[RotationRule, datetime], fraction: float
) -> None:
    """Any moment between now and the next slot gives that same slot: nothing is computed from the
    time the task happened to run."""
    rule, after = case
    upcoming = next_rotation_at(rule, after)
    later = after + (upcoming - after) * fraction
    if later < upcoming:
        assert next_rotation_at(rule, later) == upcoming


@PROPERTY_SETTINGS
@given(rules_and_instants(), st.lists(st.integers(1, 40 * 86_400), min_size=1, max_size=12))
def test_a_pass_rotates_at_most_once_per_missed_window(
    case: tuple[RotationRule, datetime], gaps: list[int]
) -> None:
    """Passes at arbitrary times (some after Beat was down for days) rotate exactly once for each
    interval between consecutive slots that contains at least one pass, however many slots passed."""
    rule, start = case
    pass_times = []
    moment = start
    for gap in gaps:
        moment += timedelta(seconds=gap)
        pass_times.append(moment)
    slots = [next_rotation_at(rule, start)]
    while slots[-1] <= pass_times[-1]:
        slots.append(next_rotation_at(rule, slots[-1]))
    assert slots == sorted(set(slots))

    due, rotations = slots[0], 0
    for moment in pass_times:
        if due <= moment:
            rotations += 1
            due = next_rotation_at(rule, moment)
            assert due > moment
            assert due == slots[bisect.bisect_right(slots, moment)]
    windows_with_a_pass = {bisect.bisect_right(slots, m) for m in pass_times if m >= slots[0]}
    assert rotations == len(windows_with_a_pass)


@given(st.integers(2, 8), st.integers(0, 50), st.randoms(use_true_random=False))
def test_random_rotation_never_shows_the_same_video_twice_in_a_row(
    length: int, current: int, chooser: random.Random
) -> None:
    current %= length
    picked = next_index("random", current, length, chooser)
    assert 0 <= picked < length and picked != current


def test_daily_time_stays_at_the_same_local_hour_across_dst() -> None:
    rule = RotationRule.parse(rotation_type="daily", timezone="Europe/Berlin", time_of_day="09:00")
    before_change = next_rotation_at(rule, datetime(2027, 3, 27, 12, 0, tzinfo=UTC))
    after_change = next_rotation_at(rule, before_change)
    assert before_change == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)  # 09:00 CEST, the day clocks go forward
    assert after_change == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    autumn = next_rotation_at(rule, datetime(2027, 10, 30, 12, 0, tzinfo=UTC))
    assert autumn == datetime(2027, 10, 31, 8, 0, tzinfo=UTC)  # 09:00 CET: 25 hours after the day before


def test_skipped_local_time_rotates_when_the_clocks_jump_and_repeated_time_once() -> None:
    rule = RotationRule.parse(rotation_type="daily", timezone="Europe/Berlin", time_of_day="02:30")
    spring = next_rotation_at(rule, datetime(2027, 3, 27, 12, 0, tzinfo=UTC))
    assert spring == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 02:00 CET became 03:00 CEST
    autumn = next_rotation_at(rule, datetime(2027, 10, 30, 12, 0, tzinfo=UTC))
    assert autumn == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)
    assert next_rotation_at(rule, autumn) == datetime(2027, 11, 1, 1, 30, tzinfo=UTC)  # not the second one


def test_monthly_day_missing_from_a_month_uses_its_last_day() -> None:
    rule = RotationRule.parse(rotation_type="monthly", timezone="America/New_York", day_of_month=31)
    slots = [next_rotation_at(rule, datetime(2028, 1, 31, 12, 0, tzinfo=UTC))]
    for _ in range(2):
        slots.append(next_rotation_at(rule, slots[-1]))
    assert [s.astimezone(rule.zone).date() for s in slots] == [
        date(2028, 2, 29),
        date(2028, 3, 31),
        date(2028, 4, 30),
    ]


def test_local_instant_of_a_skipped_day_is_the_jump() -> None:
    # Samoa skipped 30 December 2011 entirely: noon that day happened at the jump, local midnight.
    apia = ZoneInfo("Pacific/Apia")
    instant = local_instant(datetime(2011, 12, 30, 12, 0), apia)
    assert instant.astimezone(apia).replace(tzinfo=None) == datetime(2011, 12, 31, 0, 0)


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"rotation_type": "hourly"}, "rotation_type must be one of"),
        ({"rotation_type": "daily", "timezone": "Mars/Olympus"}, "not a known IANA time zone"),
        ({"rotation_type": "daily", "time_of_day": "25:00"}, "time_of_day must be HH:MM"),
        ({"rotation_type": "weekly", "day_of_week": 7}, "day_of_week from 0 (Monday) to 6 (Sunday)"),
        ({"rotation_type": "monthly"}, "day_of_month from 1 to 31"),
        ({"rotation_type": "cron"}, "needs cron_expression"),
        ({"rotation_type": "cron", "cron_expression": "0 9 * *"}, "five fields"),
        ({"rotation_type": "cron", "cron_expression": "0 0 30 2 *"}, "never matches a real date"),
    ],
)
def test_unusable_schedules_are_refused_with_a_reason(fields: dict[str, object], sentence: str) -> None:
    with pytest.raises(InvalidRotationRule, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        RotationRule.parse(**fields)  # type: ignore[arg-type]


# ---- the pass, on SQLite and PostgreSQL -------------------------------------------------------------

NOW = datetime(2027, 5, 12, 9, 30, tzinfo=UTC)


def make_content_with_videos(count: int) -> tuple[int, list[int]]:
    return make_content(make_company(), count)


def add_schedule(content_id: int, sequence: list[int], next_at: datetime, **fields: object) -> int:
    values: dict[str, object] = {
        "rotation_type": "daily",
        "time_of_day": "09:00",
        "timezone": "Europe/Berlin",
    }
    values.update(fields)
    with session_scope() as session:
        schedule = VideoRotationSchedule(
            ar_content_id=content_id,
            video_sequence=sequence,
            current_index=0,
            next_rotation_at=next_at,
            **values,
        )
        session.add(schedule)
        session.flush()
        return schedule.id


def rotate(now: datetime = NOW, seed: int | None = None) -> dict[str, int]:
    with session_scope() as session:
        chooser = random.Random(seed) if seed is not None else None
        return rotate_scheduled_videos(session, now=now, chooser=chooser).to_dict()


def state(content_id: int) -> tuple[int | None, int, datetime | None]:
    with session_scope() as session:
        content = session.get_one(ARContent, content_id)
        schedule = session.scalars(
            select(VideoRotationSchedule).where(VideoRotationSchedule.ar_content_id == content_id)
        ).one()
        return content.active_video_id, schedule.current_index, schedule.next_rotation_at


def test_due_schedule_switches_to_the_next_video_once(arv_env: dict[str, str]) -> None:
    content, videos = make_content_with_videos(3)
    add_schedule(content, videos, NOW - timedelta(minutes=30))  # 09:00 Berlin = 07:00 UTC was due

    assert rotate() == {"rotated": 1, "contents_switched": 1}
    assert rotate() == {"rotated": 0, "contents_switched": 0}
    assert state(content) == (videos[1], 1, datetime(2027, 5, 13, 7, 0, tzinfo=UTC))
    rotate(datetime(2027, 5, 13, 7, 0, tzinfo=UTC))
    rotate(datetime(2027, 5, 14, 7, 0, 1, tzinfo=UTC))
    assert state(content)[:2] == (videos[0], 0)  # wrapped around


def test_schedule_missed_for_days_rotates_once(arv_env: dict[str, str]) -> None:
    content, videos = make_content_with_videos(4)
    add_schedule(content, videos, NOW - timedelta(days=9))
    assert rotate()["rotated"] == 1
    assert state(content) == (videos[1], 1, datetime(2027, 5, 13, 7, 0, tzinfo=UTC))


def test_schedules_not_due_or_stopped_are_left_alone(arv_env: dict[str, str]) -> None:
    later, later_videos = make_content_with_videos(2)
    add_schedule(later, later_videos, NOW + timedelta(seconds=1))
    stopped, stopped_videos = make_content_with_videos(2)
    add_schedule(stopped, stopped_videos, NOW - timedelta(days=1), is_active=False)
    assert rotate() == {"rotated": 0, "contents_switched": 0}
    assert state(later)[0] == later_videos[0] and state(stopped)[0] == stopped_videos[0]


def test_random_schedule_never_plays_the_same_video_twice_in_a_row(arv_env: dict[str, str]) -> None:
    content, videos = make_content_with_videos(3)
    add_schedule(content, videos, NOW - timedelta(minutes=1), rotation_type="random")
    shown = [state(content)[0]]
    moment = NOW
    for day in range(12):
        rotate(moment, seed=day)
        shown.append(state(content)[0])
        moment = state(content)[2] + timedelta(seconds=1)  # type: ignore[operator]
    assert all(a != b for a, b in zip(shown, shown[1:], strict=False))
    assert set(shown) == set(videos)


def test_video_no_longer_belonging_to_the_content_is_not_shown(arv_env: dict[str, str]) -> None:
    content, videos = make_content_with_videos(2)
    other_content, other_videos = make_content_with_videos(1)
    add_schedule(content, [videos[0], other_videos[0]], NOW - timedelta(minutes=1))
    assert rotate() == {"rotated": 1, "contents_switched": 0}
    assert state(content)[:2] == (videos[0], 1)


def test_two_workers_rotating_at_once_rotate_each_schedule_once(arv_env: dict[str, str]) -> None:
    contents = []
    for _ in range(60):
        content, videos = make_content_with_videos(2)
        add_schedule(content, videos, NOW - timedelta(minutes=5))
        contents.append((content, videos))
    start = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def run() -> None:
        start.wait()
        results.append(rotate())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(r["rotated"] for r in results) == 60
    assert sum(r["contents_switched"] for r in results) == 60
    assert all(state(content)[:2] == (videos[1], 1) for content, videos in contents)


# ---- the schedule in words, and its next times ---------------------------------------------------------


def unsaved_schedule(**fields: object) -> VideoRotationSchedule:
    values: dict[str, object] = {"rotation_type": "daily", "timezone": "UTC"}
    values.update(fields)
    return VideoRotationSchedule(**values)


@pytest.mark.parametrize(
    ("fields", "english", "russian"),
    [
        (
            {"time_of_day": "09:00", "timezone": "Europe/Moscow"},
            "Every day at 09:00 (Europe/Moscow)",
            "Каждый день в 09:00 (Europe/Moscow)",
        ),
        (
            {"rotation_type": "weekly", "day_of_week": 0, "time_of_day": "09:00"},
            "Every Monday at 09:00 (UTC)",
            "Каждый понедельник в 09:00 (UTC)",
        ),
        (
            {"rotation_type": "weekly", "day_of_week": 4, "time_of_day": "18:45"},
            "Every Friday at 18:45 (UTC)",
            "Каждую пятницу в 18:45 (UTC)",
        ),
        (
            {"rotation_type": "monthly", "day_of_month": 15, "time_of_day": "10:30"},
            "On day 15 of every month at 10:30 (UTC)",
            "15-го числа каждого месяца в 10:30 (UTC)",
        ),
        (
            {"rotation_type": "monthly", "day_of_month": 31},
            "On day 31 of every month (the last day in shorter months) at 00:00 (UTC)",
            "31-го числа каждого месяца (в более коротких месяцах — в последний день) в 00:00 (UTC)",
        ),
        (
            {"rotation_type": "random", "time_of_day": "08:15", "timezone": "Europe/Berlin"},
            "A random other video every day at 08:15 (Europe/Berlin)",
            "Случайное другое видео каждый день в 08:15 (Europe/Berlin)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "0 */6 * * *"},
            "Every day at 00:00, 06:00, 12:00 and 18:00 (UTC)",
            "Каждый день в 00:00, 06:00, 12:00 и 18:00 (UTC)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "30 9 * * 1-5"},
            "Every weekday (Monday to Friday) at 09:30 (UTC)",
            "По будним дням (с понедельника по пятницу) в 09:30 (UTC)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "0 9 * * 7"},
            "Every Sunday at 09:00 (UTC)",
            "Каждое воскресенье в 09:00 (UTC)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "0 20 * * 1,3,5"},
            "On Mondays, Wednesdays and Fridays at 20:00 (UTC)",
            "По понедельникам, средам и пятницам в 20:00 (UTC)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "0 9 1,31 * *"},
            "On days 1 and 31 of every month at 09:00 (UTC)",
            "1 и 31 числа каждого месяца в 09:00 (UTC)",
        ),
        (
            {"rotation_type": "cron", "cron_expression": "15 * * * *"},
            "Every hour at :15 (UTC)",
            "Каждый час в :15 (UTC)",
        ),
        (
            {"rotation_type": "random", "cron_expression": "0 12 * * 6"},
            "A random other video every Saturday at 12:00 (UTC)",
            "Случайное другое видео каждую субботу в 12:00 (UTC)",
        ),
    ],
)
def test_each_kind_of_schedule_reads_in_plain_english_and_russian(
    fields: dict[str, object], english: str, russian: str
) -> None:
    schedule = unsaved_schedule(**fields)
    assert describe_schedule(schedule, "en") == english
    assert describe_schedule(schedule, "ru") == russian


@pytest.mark.parametrize(
    "expression", ["*/5 * * * *", "0 9 L * *", "0 9 * * 1#2", "0 9 1 * 1", "0 9 * 6-8 *"]
)
def test_a_cron_schedule_with_no_short_reading_is_quoted_as_it_is(expression: str) -> None:
    schedule = unsaved_schedule(rotation_type="cron", cron_expression=expression, timezone="Asia/Tokyo")
    assert describe_schedule(schedule, "en") == f"On the cron schedule '{expression}' (Asia/Tokyo)"
    assert describe_schedule(schedule, "ru") == f"По расписанию cron '{expression}' (Asia/Tokyo)"


def test_a_language_without_words_of_its_own_reads_english() -> None:
    assert describe_schedule(unsaved_schedule(time_of_day="07:00"), "de") == "Every day at 07:00 (UTC)"


def test_next_rotation_times_follow_the_schedule_across_a_clock_change() -> None:
    schedule = unsaved_schedule(time_of_day="02:30", timezone="Europe/Berlin")
    assert next_rotation_times(schedule, count=3, after=datetime(2027, 3, 26, 12, 0, tzinfo=UTC)) == [
        datetime(2027, 3, 27, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),  # skipped: the moment clocks jump to 03:00 CEST
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_next_rotation_times_default_to_five_from_now() -> None:
    times = next_rotation_times(unsaved_schedule(rotation_type="cron", cron_expression="* * * * *"))
    now = datetime.now(UTC)
    assert len(times) == 5 and times == sorted(times)
    assert now < times[0] <= now + timedelta(minutes=1)
    assert all(
        later - earlier == timedelta(minutes=1) for earlier, later in zip(times, times[1:], strict=False)
    )


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_next_rotation_times_are_the_slots_the_rotation_pass_sets_one_after_another(
    arv_env: dict[str, str],
) -> None:
    content, videos = make_content_with_videos(2)
    fields = {
        "rotation_type": "weekly",
        "day_of_week": 6,
        "time_of_day": "23:30",
        "timezone": "America/Havana",
    }
    schedule_id = add_schedule(content, videos, NOW, **fields)
    with session_scope() as session:
        predicted = next_rotation_times(
            session.get_one(VideoRotationSchedule, schedule_id), count=4, after=NOW
        )
    stored = []
    for _ in predicted:
        rotate(state(content)[2] or NOW)
        stored.append(state(content)[2])
    assert stored == predicted
