"""The fault suite's short form: ARV's production shape, every part its own process on a fresh data
folder, recovers from a worker killed mid-compile or SIGTERMed as a group, Redis restarted empty and
every database connection terminated, losing, repeating and leaving stuck nothing
(benchmarks/faults.py runs all)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.faults import HEADER, FaultReport, format_row, run_faults

SHORT_FORM = ["kill-markers", "sigterm-markers", "redis-restart", "db-terminate"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FaultReport]:
    workdir: Path = tmp_path_factory.mktemp("faults")
    lines: list[str] = [HEADER]
    done = run_faults(SHORT_FORM, workdir, log=lines.append)
    # The table in the test's output: what each fault did, and where the parts' logs are.
    print("\n".join(lines) + f"\nlogs under {workdir}")
    return {report.fault: report for report in done}


def _assert_recovered(report: FaultReport) -> None:
    assert report.items > 0, format_row(report)
    assert (report.lost, report.duplicated, report.stuck) == (0, 0, 0), format_row(report)
    assert report.within_bound, format_row(report)


@pytest.mark.slow
@pytest.mark.production_stack
@pytest.mark.timeout(480)  # the first test also starts the stack and runs every fault
@pytest.mark.parametrize("fault", ["kill-markers", "sigterm-markers"])
def test_a_worker_killed_or_sigtermed_mid_compile_has_its_job_started_again_within_30_s(
    reports: dict[str, FaultReport], fault: str
) -> None:
    report = reports[fault]
    assert report.restart_s is not None and report.restart_s <= 30, format_row(report)
    _assert_recovered(report)


@pytest.mark.slow
@pytest.mark.production_stack
@pytest.mark.timeout(480)  # the first test also starts the stack and runs every fault
def test_uploads_accepted_while_redis_was_down_are_ready_within_30_s_of_its_empty_return(
    reports: dict[str, FaultReport],
) -> None:
    report = reports["redis-restart"]
    assert report.refused == 0, format_row(report)
    _assert_recovered(report)


@pytest.mark.slow
@pytest.mark.production_stack
@pytest.mark.timeout(480)  # the first test also starts the stack and runs every fault
def test_terminating_every_database_connection_during_settlements_loses_and_repeats_nothing(
    reports: dict[str, FaultReport],
) -> None:
    _assert_recovered(reports["db-terminate"])
