"""Timer triggers on NCRONTAB schedules (six fields, seconds first) or TimeSpans."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

from azure.functions import meta
from croniter import croniter

from .indexing import FunctionSpec
from .invoker import Invoker, decode
from .settings import ConfigError, parse_timespan

log = logging.getLogger("funchost")


class Schedule:
    """When a timer fires next: NCRONTAB `{second} {minute} {hour} {day} {month} {day-of-week}`."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self.interval: timedelta | None = None
        fields = self.expression.split()
        if len(fields) == 1 and ":" in self.expression:
            self.interval = parse_timespan(self.expression, "schedule")
            if self.interval.total_seconds() <= 0:
                raise ConfigError(f"timer schedule {expression!r} must be positive")
        elif len(fields) == 6:
            if not croniter.is_valid(self.expression, second_at_beginning=True):
                raise ConfigError(
                    f"timer schedule {expression!r} is not a valid NCRONTAB expression"
                )
        else:
            raise ConfigError(
                f"timer schedule {expression!r}: expected six NCRONTAB fields "
                "(second minute hour day month day-of-week) or a TimeSpan"
            )

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        nxt: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(
            datetime
        )
        return nxt


class TimerRunner:
    """Fires one timer function on its schedule; one invocation at a time, as in Azure."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker) -> None:
        self.spec = spec
        self.invoker = invoker
        self.schedule = Schedule(str(spec.trigger.get("schedule", "")))
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            await self._fire(None, past_due=False)
        while not self.stopping.is_set():
            now = datetime.now(UTC)
            due = self.schedule.next_after(max(now, last) if last else now)  # never twice per due
            try:
                await asyncio.wait_for(self.stopping.wait(), (due - now).total_seconds())
                return
            except TimeoutError:
                pass
            await self._fire(last, past_due=datetime.now(UTC) - due > timedelta(seconds=1))
            last = due

    async def _fire(self, last: datetime | None, past_due: bool) -> None:
        now = datetime.now(UTC)
        payload = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {
                "Last": last.isoformat() if last else None,
                "Next": self.schedule.next_after(now).isoformat(),
                "LastUpdated": now.isoformat(),
            },
            "IsPastDue": past_due,
        }
        value = decode("timerTrigger", meta.Datum(json.dumps(payload), "json"))
        await self.invoker.invoke(self.spec, value, reason="Timer fired")
