"""Timer triggers: NCRONTAB schedules with seconds, and runOnStartup."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from funchost.testing import FuncHostError

if TYPE_CHECKING:
    from conftest import AppRunner


def test_a_six_field_ncrontab_schedule_fires_every_second(run_app: AppRunner) -> None:
    # given a timer on "*/1 * * * * *" (seconds first, as NCRONTAB has them)
    app = run_app.start("timers")
    # when the host has run for a few seconds
    records = app.wait_for_records(lambda r: len(r) >= 3, function="every_second", timeout=8)
    # then it fired once per second, in distinct seconds, and never as past due
    seconds = [datetime.fromisoformat(r["at"]).replace(microsecond=0) for r in records[:3]]
    assert len(set(seconds)) == 3
    gaps = [(b - a).total_seconds() for a, b in zip(seconds, seconds[1:], strict=False)]
    assert all(0.5 <= gap <= 2 for gap in gaps), gaps
    assert not any(r["past_due"] for r in records)


def test_run_on_startup_fires_once_when_the_host_starts(run_app: AppRunner) -> None:
    # given a yearly timer with runOnStartup
    app = run_app.start("timers")
    # when the host starts
    records = app.wait_for_records(
        lambda r: len(r) >= 1, function="yearly_with_startup_run", timeout=5
    )
    # then it ran once right away, though its schedule is months off
    assert len(records) == 1
    app.host.wait_for_log("Executed 'Functions.yearly_with_startup_run' (Succeeded")
    # and it runs again on the next start
    app.host.restart()
    app.wait_for_records(lambda r: len(r) >= 2, function="yearly_with_startup_run", timeout=5)


def test_an_invalid_schedule_is_refused_at_start(run_app: AppRunner) -> None:
    # given an app whose timer schedule has five fields (unix cron, not NCRONTAB)
    host, app_dir, _ = run_app.host_for("timers")
    source = app_dir / "function_app.py"
    source.write_text(source.read_text().replace('"*/1 * * * * *"', '"*/1 * * * *"'))
    # when funchost starts it
    with pytest.raises(FuncHostError) as refused:
        host.start()
    # then it exits with an error naming the schedule
    assert refused.value.returncode == 2
    assert "'*/1 * * * *'" in refused.value.log
    assert "six NCRONTAB fields" in refused.value.log
