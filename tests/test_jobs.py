"""The job table keeps work from being lost or done twice, whatever the broker does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from arv.db.models import Job, JobStatus, utcnow
from arv.db.session import get_engine, session_scope
from arv.services import jobs


def _enqueue(**kwargs: object) -> str:
    with session_scope() as session:
        job = jobs.enqueue(session, task_name="sweep_jobs", queue="default", args={}, **kwargs)  # type: ignore[arg-type]
        return job.id


def _claim(job_id: str, *, lease_s: float) -> Job | None:
    with get_engine().connect() as connection:
        return jobs.claim(connection, job_id, lease_s=lease_s)


def _job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_a_job_is_claimed_once_however_often_its_message_arrives(arv_env: dict[str, str]) -> None:
    job_id = _enqueue()
    first = _claim(job_id, lease_s=60)
    second = _claim(job_id, lease_s=60)
    assert first is not None and first.attempts == 1
    assert second is None
    with session_scope() as session:
        assert jobs.succeed(session, first)
    assert _claim(job_id, lease_s=60) is None
    assert _job(job_id).status == JobStatus.SUCCEEDED


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(arv_env: dict[str, str]) -> None:
    job_id = _enqueue()
    dead = _claim(job_id, lease_s=0.0)
    assert dead is not None
    again = _claim(job_id, lease_s=60)
    assert again is not None and again.attempts == 2
    # The dead worker's late answer changes nothing: the claim is no longer its own.
    with session_scope() as session:
        assert not jobs.succeed(session, dead)
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
        assert jobs.claim(connection, job_id, lease_s=60)
        if postgresql:
            assert connection.scalar(text("SHOW synchronous_commit")) == durability
        connection.execute(update(Job).where(Job.id == other).values(error="half-written"))
        connection.rollback()
    assert _job(job_id).status == JobStatus.RUNNING
    assert _job(other).error is None


def test_sweep_requeues_expired_leases_and_fails_them_after_the_last_attempt(arv_env: dict[str, str]) -> None:
    retried, exhausted = _enqueue(), _enqueue()
    for job_id in (retried, exhausted):
        assert _claim(job_id, lease_s=0.0)
    with session_scope() as session:
        session.get(Job, exhausted).attempts = 5  # type: ignore[union-attr]
    with session_scope() as session:
        result, wakeups, failed = jobs.sweep(
            session,
            max_attempts=5,
            republish_after_s=30,
            queue_lengths={"default": 0},
            now=utcnow() + timedelta(seconds=1),
        )
    assert failed == [exhausted]
    assert result.expired_leases_requeued == 1 and result.expired_leases_failed == 1
    assert [w.job_id for w in wakeups] == [retried]
    assert _job(retried).status == JobStatus.QUEUED
    assert _job(exhausted).status == JobStatus.FAILED


def test_sweep_republishes_a_lost_message_but_not_a_backlog(arv_env: dict[str, str]) -> None:
    job_ids = [_enqueue() for _ in range(3)]
    later = utcnow() + timedelta(seconds=60)
    with session_scope() as session:
        # All three messages are still in the broker: a backlog, nothing to republish.
        _, wakeups, _ = jobs.sweep(
            session, max_attempts=5, republish_after_s=30, queue_lengths={"default": 3}, now=later
        )
    assert wakeups == []
    with session_scope() as session:
        # One message was lost: the stale jobs are published again, once per republish interval.
        _, wakeups, _ = jobs.sweep(
            session, max_attempts=5, republish_after_s=30, queue_lengths={"default": 2}, now=later
        )
        _, again, _ = jobs.sweep(
            session,
            max_attempts=5,
            republish_after_s=30,
            queue_lengths={"default": 2},
            now=later + timedelta(seconds=1),
        )
    assert sorted(w.job_id for w in wakeups) == sorted(job_ids)
    assert again == []
    with session_scope() as session:
        counts = session.scalars(select(Job.publish_count).where(Job.id.in_(job_ids))).all()
    assert counts == [2, 2, 2]


def test_jobs_written_in_a_rolled_back_transaction_are_never_published(
    arv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from arv.tasks import publish

    sent: list[str] = []
    # A spy at the broker boundary: what would be sent, without a broker.
    monkeypatch.setattr(publish, "send_wakeups", lambda wakeups: sent.extend(w.job_id for w in wakeups))
    with pytest.raises(RuntimeError), session_scope() as session:
        jobs.enqueue(session, task_name="sweep_jobs", queue="default", args={})
        raise RuntimeError("the request failed after writing the job")
    committed = _enqueue()
    assert sent == [committed]


@pytest.mark.parametrize("base_s", [0.3, 2.0])
def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(base_s: float) -> None:
    from arv.tasks.jobs import retry_delay

    for attempts in range(1, 12):
        ceiling = min(60.0, base_s * 2 ** (attempts - 1))
        delays = {retry_delay(attempts, base_s=base_s, max_s=60.0) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
