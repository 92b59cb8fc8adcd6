"""Views per day: the counters the public page writes, read back as one entry per day of a window."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from arv.db.session import session_scope
from arv.services.public_content import count_view, views_per_day
from tests.support.records import make_company, make_content

TODAY = date(2027, 5, 12)

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)


def views(content_id: int, day: date, count: int) -> None:
    with session_scope() as session:
        for _ in range(count):
            count_view(session, content_id, day=day)


def test_views_per_day_has_one_entry_per_day_oldest_first_with_zero_days(arv_env: dict[str, str]) -> None:
    content, _ = make_content(make_company(), 1)
    views(content, TODAY, 3)
    views(content, TODAY - timedelta(days=2), 1)
    views(content, TODAY - timedelta(days=7), 5)  # before the window

    with session_scope() as session:
        assert views_per_day(session, content, days=4, today=TODAY) == [
            (date(2027, 5, 9), 0),
            (date(2027, 5, 10), 1),
            (date(2027, 5, 11), 0),
            (date(2027, 5, 12), 3),
        ]
        month = views_per_day(session, content, today=TODAY)
    assert len(month) == 30 and month[0][0] == TODAY - timedelta(days=29) and month[-1] == (TODAY, 3)
    assert sum(count for _, count in month) == 9


def test_views_per_day_counts_only_the_content_asked_for(arv_env: dict[str, str]) -> None:
    company = make_company()
    content, _ = make_content(company, 1)
    other, _ = make_content(company, 1)
    views(other, TODAY, 2)
    with session_scope() as session:
        assert views_per_day(session, content, days=2, today=TODAY) == [
            (TODAY - timedelta(days=1), 0),
            (TODAY, 0),
        ]


def test_views_per_day_refuses_an_empty_window(arv_env: dict[str, str]) -> None:
    content, _ = make_content(make_company(), 1)
    with session_scope() as session, pytest.raises(ValueError, match="at least 1"):
        views_per_day(session, content, days=0)
