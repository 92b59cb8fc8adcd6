"""The job table keeps work from being lost or done twice, whatever the broker, the clocks or the
database do."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from arv.db.dialect import read_db_now
from arv.db.models import Job, JobStatus
from arv.db.session import get_engine, session_scope
from arv.jobs import store
from arv.jobs.kinds import JobKind, JobOutcome, RetryPolicy, register
from arv.jobs.publisher import Wakeup, use_publisher
from arv.jobs.queues import Queue
from arv.jobs.runner import RunAgain, retry_delay, run_job
from arv.jobs.sweep import sweep
from arv.storage import StorageError

NOOP = register(JobKind(name="test_noop", queue=Queue.DEFAULT, run=lambda _s, _j: JobOutcome({"done": 1})))


def _enqueue(kind: JobKind = NOOP) -> str:
    with session_scope() as session:
        return store.enqueue(session, kind, {})


def _claim(job_id: str, *, lease_s: float) -> Job | None:
    with get_engine().connect() as connection:
        return store.claim(connection, job_id, lease_s=lease_s)


def _job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _sweep(queue_lengths: dict[str, int | None], *, republish_after_s: float = 30) -> list[Wakeup]:
    with session_scope() as session:
        _, wakeups = sweep(
            session, max_lost_leases=5, republish_after_s=republish_after_s, queue_lengths=queue_lengths
        )
    return wakeups


def _age(job_id: str, seconds: float, *columns: str) -> None:
    """Move the job's times `seconds` into the past, as if that much time had gone by."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        for column in columns:
            value = getattr(job, column)
            if value is not None:
                setattr(job, column, value - timedelta(seconds=seconds))


def test_a_job_is_claimed_once_however_often_its_message_arrives(arv_env: dict[str, str]) -> None:
    job_id = _enqueue()
    first = _claim(job_id, lease_s=60)
    second = _claim(job_id, lease_s=60)
    assert first is not None and first.attempts == 1
    assert second is None
    with session_scope() as session:
        assert store.succeed(session, first)
    assert _claim(job_id, lease_s=60) is None
    assert _job(job_id).status == JobStatus.SUCCEEDED


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(arv_env: dict[str, str]) -> None:
    job_id = _enqueue()
    dead = _claim(job_id, lease_s=-1)
    assert dead is not None
    again = _claim(job_id, lease_s=60)
    assert again is not None and again.attempts == 2 and again.lost_leases == 1
    # The dead worker's late answer changes nothing: the claim is no longer its own.
    with session_scope() as session:
        assert not store.succeed(session, dead)
    assert _job(job_id).status == JobStatus.RUNNING


def test_the_work_after_a_claim_runs_in_a_transaction_again(arv_env: dict[str, str]) -> None:
    # The claim commits on its own (on PostgreSQL in autocommit, without waiting for the disk); what
    # follows on the same connection must be a durable transaction again, or a job that fails
    # half-way would leave its half written.
    job_id, other = _enqueue(), _enqueue()
    postgresql = get_engine().dialect.name == "postgresql"
    with get_engine().connect() as connection:
        if postgresql:
            durability = connection.scalar(text("SHOW synchronous_commit"))
            connection.rollback()
        assert store.claim(connection, job_id, lease_s=60)
        if postgresql:
            assert connection.scalar(text("SHOW synchronous_commit")) == durability
        connection.execute(update(Job).where(Job.id == other).values(error="half-written"))
        connection.rollback()
    assert _job(job_id).status == JobStatus.RUNNING
    assert _job(other).error is None


def test_every_job_time_is_the_database_clock_not_the_writers(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer whose clock runs an hour ahead: its job is due now by the database's clock, and a
    # worker claims it at once (before, the worker waited for the writer's future to arrive).
    import arv.db.models as models

    ahead = models.utcnow() + timedelta(hours=1)
    monkeypatch.setattr(models, "utcnow", lambda: ahead)
    job_id = _enqueue()
    with session_scope() as session:
        db_now = read_db_now(session)
    job = _job(job_id)
    assert abs((job.available_at - db_now).total_seconds()) < 5
    assert abs((job.created_at - db_now).total_seconds()) < 5
    claimed = _claim(job_id, lease_s=10)
    assert claimed is not None
    assert claimed.lease_expires_at is not None
    assert 5 < (claimed.lease_expires_at - db_now).total_seconds() < 15


def test_a_running_jobs_heartbeat_keeps_its_lease_and_a_dead_one_lapses(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _enqueue()
    claimed = _claim(job_id, lease_s=1)
    assert claimed is not None
    with get_engine().connect() as connection:
        assert store.renew_leases(connection, [(job_id, claimed.attempts)], lease_s=30) == 1
        # A stale attempt (the claim moved on) renews nothing.
        assert store.renew_leases(connection, [(job_id, claimed.attempts + 1)], lease_s=30) == 0
    time.sleep(1.2)
    assert _sweep({"default": 0}) == []  # renewed: still running, nothing taken back
    assert _job(job_id).status == JobStatus.RUNNING
    with get_engine().connect() as connection:
        store.renew_leases(connection, [(job_id, claimed.attempts)], lease_s=-1)
    assert [w.job_id for w in _sweep({"default": 0})] == [job_id]
    assert _job(job_id).status == JobStatus.QUEUED and _job(job_id).lost_leases == 1


def test_the_heartbeat_thread_renews_the_lease_of_a_job_running_longer_than_its_lease(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import apply_env

    apply_env({**arv_env, "ARV_JOB_LEASE_S": "1", "ARV_JOB_HEARTBEAT_S": "0.2"}, monkeypatch)
    seen: list[int] = []

    def slow(_session: Any, job: Job) -> JobOutcome:
        time.sleep(2.5)  # two and a half leases
        seen.append(len(_sweep({"default": 0})))  # a sweep meanwhile takes nothing back
        return JobOutcome({"slept": 2.5})

    kind = JobKind(name="test_slow", queue=Queue.DEFAULT, run=slow)
    job_id = _enqueue(kind)
    assert run_job(kind, job_id) == {"slept": 2.5}
    assert seen == [0]
    job = _job(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.lost_leases == 0


def test_sweep_requeues_lapsed_leases_and_fails_them_after_too_many(arv_env: dict[str, str]) -> None:
    retried, exhausted = _enqueue(), _enqueue()
    for job_id in (retried, exhausted):
        assert _claim(job_id, lease_s=-1)
    with session_scope() as session:
        session.get(Job, exhausted).lost_leases = 4  # type: ignore[union-attr]
    with session_scope() as session:
        result, wakeups = sweep(
            session, max_lost_leases=5, republish_after_s=30, queue_lengths={"default": 0}
        )
    assert result.leases_requeued == 1 and result.leases_failed == 1
    assert [w.job_id for w in wakeups] == [retried]
    assert _job(retried).status == JobStatus.QUEUED
    failed = _job(exhausted)
    assert failed.status == JobStatus.FAILED and "stopped" in (failed.error or "")


def test_sweep_republishes_only_what_the_broker_lacks_and_not_a_fresh_wakeup(arv_env: dict[str, str]) -> None:
    use_publisher(len)  # a broker that takes every wake-up
    job_ids = [_enqueue() for _ in range(3)]
    # Fresh wake-ups have not had their chance yet: nothing, even with the broker empty.
    assert _sweep({"default": 0}) == []
    for job_id in job_ids:
        _age(job_id, 60, "available_at", "last_published_at")
    # All three messages are still in the broker: a backlog, nothing to republish.
    assert _sweep({"default": 3}) == []
    # One message was lost: one job is woken up again (the oldest wake-up), not all three.
    (first,) = _sweep({"default": 2})
    # And the next sweep, with the same count, does not republish that one again.
    (second,) = _sweep({"default": 2})
    assert first.job_id != second.job_id
    with session_scope() as session:
        counts = sorted(session.scalars(select(Job.publish_count).where(Job.id.in_(job_ids))).all())
    assert counts == [1, 2, 2]
    # The broker cannot say: every stale job is woken up, once.
    assert {w.job_id for w in _sweep({"default": None})} == set(job_ids) - {first.job_id, second.job_id}


def test_jobs_written_in_a_rolled_back_transaction_are_never_published(arv_env: dict[str, str]) -> None:
    sent: list[str] = []

    def spy(wakeups: Sequence[Wakeup]) -> int:  # the broker boundary: what would be sent
        sent.extend(w.job_id for w in wakeups)
        return len(wakeups)

    use_publisher(spy)
    with pytest.raises(RuntimeError), session_scope() as session:
        store.enqueue(session, NOOP, {})
        raise RuntimeError("the request failed after writing the job")
    committed = _enqueue()
    assert sent == [committed]


def _recording_publisher() -> list[str]:
    """Hand the job layer a broker that takes every wake-up; returns the ids it was sent, in order."""
    sent: list[str] = []

    def record(wakeups: Sequence[Wakeup]) -> int:
        sent.extend(w.job_id for w in wakeups)
        return len(wakeups)

    use_publisher(record)
    return sent


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_job_written_in_a_savepoint_is_published_when_the_outer_transaction_commits(
    arv_env: dict[str, str],
) -> None:
    sent = _recording_publisher()
    with session_scope() as session:
        with session.begin_nested():
            job_id = store.enqueue(session, NOOP, {})
        # The savepoint is released but nothing is committed: no worker could see the job yet.
        assert sent == []
        with session.begin_nested(), session.begin_nested():
            inner = store.enqueue(session, NOOP, {})
        assert sent == []
    assert sent == [job_id, inner]


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_a_savepoint_rolled_back_forgets_its_own_wakeups_and_keeps_the_outer_ones(
    arv_env: dict[str, str],
) -> None:
    sent = _recording_publisher()
    with session_scope() as session:
        before = store.enqueue(session, NOOP, {})
        with pytest.raises(RuntimeError), session.begin_nested():
            store.enqueue(session, NOOP, {})
            with session.begin_nested():
                store.enqueue(session, NOOP, {})  # released into the savepoint that then rolls back
            raise RuntimeError("the notification could not be written")
        with session.begin_nested():
            kept = store.enqueue(session, NOOP, {})
            with pytest.raises(RuntimeError), session.begin_nested():
                store.enqueue(session, NOOP, {})
                raise RuntimeError("an inner step failed")
        after = store.enqueue(session, NOOP, {})
    assert sent == [before, kept, after]
    with session_scope() as session:
        assert set(session.scalars(select(Job.id))) == {before, kept, after}


def test_a_wakeup_the_broker_did_not_take_is_sent_by_the_next_sweep_at_once(arv_env: dict[str, str]) -> None:
    use_publisher(lambda wakeups: 0)  # the broker is down
    job_id = _enqueue()
    assert _job(job_id).last_published_at is None
    assert [w.job_id for w in _sweep({"default": 0}, republish_after_s=3600)] == [job_id]


def test_a_transient_failure_retries_within_its_window_then_fails(arv_env: dict[str, str]) -> None:
    def flaky(_session: Any, _job: Job) -> JobOutcome:
        raise StorageError("storage is unreachable")

    kind = JobKind(
        name="test_flaky",
        queue=Queue.DEFAULT,
        run=flaky,
        retry=lambda _settings: RetryPolicy(base_s=0.01, max_s=0.01, window_s=60),
    )
    job_id = _enqueue(kind)
    outcome = run_job(kind, job_id)
    assert isinstance(outcome, RunAgain)
    job = _job(job_id)
    assert job.status == JobStatus.QUEUED and job.retry_until is not None
    assert "storage is unreachable" in (job.error or "")
    # Many tries inside the window: still retrying, the window does not move.
    for _ in range(3):
        _age(job_id, 1, "available_at")
        assert isinstance(run_job(kind, job_id), RunAgain)
    assert _job(job_id).retry_until == job.retry_until
    # The window closes: the next transient failure fails the job, with the reason.
    _age(job_id, 61, "available_at", "retry_until")
    assert run_job(kind, job_id) == {"failed": _job(job_id).error}
    failed = _job(job_id)
    assert failed.status == JobStatus.FAILED and "gave up after 60 s of retries" in (failed.error or "")


def test_a_settlement_the_database_refused_is_replayed_without_redoing_the_work(
    arv_env: dict[str, str],
) -> None:
    from sqlalchemy.exc import OperationalError

    worked: list[int] = []
    recorded: list[int] = []

    def once_then_record(_session: Any, _job: Job) -> JobOutcome:
        worked.append(1)

        def record(_s: Any) -> None:
            recorded.append(1)
            if len(recorded) == 1:
                raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

        return JobOutcome({"made": 1}, record=record)

    kind = JobKind(
        name="test_settle_replay",
        queue=Queue.DEFAULT,
        run=once_then_record,
        retry=lambda _settings: RetryPolicy(base_s=0.01, max_s=0.01, window_s=60),
    )
    job_id = _enqueue(kind)
    assert run_job(kind, job_id) == {"made": 1}
    assert worked == [1] and recorded == [1, 1]
    assert _job(job_id).status == JobStatus.SUCCEEDED


@pytest.mark.parametrize("base_s", [0.3, 2.0])
def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(base_s: float) -> None:
    policy = RetryPolicy(base_s=base_s, max_s=60.0, window_s=600)
    for attempts in range(1, 12):
        ceiling = min(60.0, base_s * 2 ** (attempts - 1))
        delays = {retry_delay(attempts, policy) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_a_wakeup_that_comes_before_the_job_is_due_is_sent_again_for_when_it_is(
    arv_env: dict[str, str],
) -> None:
    job_id = _enqueue()
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(available_at=read_db_now(session) + timedelta(seconds=5))
        )
    early = run_job(NOOP, job_id)
    assert isinstance(early, RunAgain) and 4 < early.delay_s < 6
    assert _job(job_id).attempts == 0
    _age(job_id, 5, "available_at")
    assert run_job(NOOP, job_id) == {"done": 1}
    assert run_job(NOOP, job_id) == {"skipped": True}
