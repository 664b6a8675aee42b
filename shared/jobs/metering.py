"""What a job costs (`shared.pricing.costs`, for the job's row) and its one charge in the ledger.

A completed job's row carries its charge (`Job.charge`, written with the completion), so its
ledger entry can be made from the row alone, by whoever gets there: the run that completed it,
a redelivery of its message that finds it completed (a crash in between), or, for a job that
no message backs (a run in the request, `Job.owed`), the recovery timer's `settle_owed`. The
ledger takes one entry per job (RowKey = job id), so every one of them may try.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal

from shared import clock
from shared.circuits import ParsedCircuit
from shared.config import Settings
from shared.jobs.models import Job, JobStatus
from shared.jobs.repository import JobRepository
from shared.ledger.budgets import BudgetHold
from shared.ledger.models import LedgerEntry
from shared.ledger.service import Ledger, amount, charge_entry
from shared.pricing.costs import FREE, Cost, finished_job_cost, job_cost

logger = logging.getLogger(__name__)

OWED_GRACE_SECONDS = 60  # an owed charge older than this was left by a process that died


def cost_text(cost: Cost) -> str:
    """`cost` as the row's `charge` field."""
    return json.dumps(
        {
            "cost": amount(cost.cost),
            "list_cost": amount(cost.list_cost),
            "currency": cost.currency,
            "price_source": cost.price_source,
        },
        separators=(",", ":"),
    )


def cost_of_row(text: str) -> Cost:
    data = json.loads(text)
    return Cost(
        Decimal(data["cost"]), Decimal(data["list_cost"]), data["currency"], data["price_source"]
    )


def _charged(job: Job) -> Cost:
    """What the completed job's row says it is charged."""
    return cost_of_row(job.charge) if job.charge else FREE


class Metering:
    def __init__(self, settings: Settings, repo: JobRepository, ledger: Ledger) -> None:
        self._settings = settings
        self._repo = repo
        self._ledger = ledger

    def cost(self, job: Job, parsed: ParsedCircuit, run_seconds: float | None = None) -> Cost:
        """What `job` costs (`shared.pricing.costs.job_cost`): nothing on the local simulator
        or an emulation; a cloud device's price book price (for `run_seconds` when the supplier
        reported them). `list_cost` is the device's price either way."""
        return job_cost(
            job.supplier,
            job.backend,
            parsed,
            job.shots,
            job.mode,
            statevector_max_qubits=self._settings.limits.statevector_max_qubits,
            run_seconds=run_seconds,
        )

    def price(self, job: Job, parsed: ParsedCircuit, execution_time_ms: float | None) -> Cost:
        """What a finished circuit job is charged (`shared.pricing.costs.finished_job_cost`);
        a circuit that cannot be mapped for a list price is charged nothing."""
        return finished_job_cost(
            job.job_id,
            job.supplier,
            job.backend,
            parsed,
            job.shots,
            job.mode,
            statevector_max_qubits=self._settings.limits.statevector_max_qubits,
            execution_time_ms=execution_time_ms,
        )

    def charge(self, job: Job) -> None:
        """Put the completed job's charge in the ledger (once, whoever calls) and count it
        against the budget it held. Storage failures raise: the caller's redelivery charges
        it. An owed job (run in the request, its row says so) is charged after the answer and
        then marked settled; if that fails, the recovery timer's `settle_owed` charges it."""
        if job.status is not JobStatus.COMPLETED or job.charge is None:
            return
        if job.owed and not job.budget_hold:
            self._ledger.charge_later(
                self._entry(job, _charged(job)), lambda: self._settled(job.user_id, job.job_id)
            )
            return
        self._enter(job)
        if job.owed:
            self._settled(job.user_id, job.job_id)

    def _enter(self, job: Job) -> None:
        cost = _charged(job)
        self._ledger.charge(self._entry(job, cost))
        if job.budget_hold:  # the budget now holds what it cost instead of the estimate
            self._ledger.reservations.settle(
                job.tenant or "",
                job.project,
                cost.cost,
                cost.currency,
                job.budget_ref,
                BudgetHold.decode(job.budget_hold),
            )

    @staticmethod
    def _entry(job: Job, cost: Cost) -> LedgerEntry:
        from shared.suppliers.backends import public_id

        return charge_entry(
            user_id=job.user_id,
            job_id=job.job_id,
            tenant=job.tenant or "",
            project=job.project,
            supplier=job.supplier,
            backend=public_id(job.supplier, job.backend),  # the network's id, as v2 names it
            mode=job.mode or "local",
            shots=job.shots,
            cost=cost,
            # When it completed, not when the entry is written: an entry written after the
            # answer is then inside any period the caller asks for after seeing that answer.
            time=job.completed_at,
        )

    def _settled(self, user_id: str, job_id: str) -> None:
        try:
            self._repo.update_unchecked(user_id, job_id, {"owed": False})
        except Exception as exc:  # the timer finds it owed, charges nothing twice
            logger.warning("job %s: not marked settled: %s", job_id, type(exc).__name__)

    def settle_owed(self) -> int:
        """Charge completed jobs left owed by a process that died before charging them;
        returns how many were found."""
        before = clock.iso(clock.utcnow() - timedelta(seconds=OWED_GRACE_SECONDS))
        found = list(self._repo.find(JobStatus.COMPLETED, owed=True, completed_at__lt=before))
        for job in found:
            self._enter(job)
            self._repo.update_unchecked(job.user_id, job.job_id, {"owed": False})
        return len(found)
