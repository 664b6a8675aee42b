"""What a job costs, finished or estimated, and what a run costs in each mode.

One rule: a run costs its device's price book price in the cloud, and nothing on the local
simulator or an emulation; the device's price is its list price either way (what the run would
have cost on the real device). `job_cost` is what a job is charged (`Cost`, the ledger's entry
and the budget's estimate at submit); `estimated_prices` is what `POST /api/v2/network/estimate`
shows per backend (`Price`, with the formula written out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal

from shared.circuits import ParsedCircuit
from shared.errors import ApiError
from shared.pricing.book import cost_model
from shared.pricing.devices import device_price
from shared.pricing.formulas import GateCounts, Price, price
from shared.suppliers.base import Mode, Target
from shared.suppliers.catalog import supplier as find_supplier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cost:
    """What a charge amounts to: `cost` charged and `list_cost` by the price book."""

    cost: Decimal
    list_cost: Decimal
    currency: str
    price_source: str


FREE = Cost(Decimal(0), Decimal(0), "USD", "local simulator: free")
# A run on the gateway's own simulator, as an estimate shows it.
LOCAL_PRICE = Price(0.0, "USD", "free: the gateway's own simulator", "this gateway", "", "")


def job_cost(
    supplier: str | None,
    backend: str,
    parsed: ParsedCircuit,
    shots: int,
    mode: str | None,
    *,
    statevector_max_qubits: int,
    run_seconds: float | None = None,
) -> Cost:
    """What a job of `shots` shots of `parsed` on `supplier`'s `backend` (None: the local
    simulator) costs run in `mode`: nothing on the local simulator or an emulation; a cloud
    device's price book price (for `run_seconds` when the supplier reported them).
    `list_cost` is the device's price either way. Raises `ApiError` for an unknown backend
    or when the circuit cannot be mapped onto the device."""
    if supplier is None:
        return FREE
    target = find_supplier(supplier).target(backend)
    listed = device_price(
        target,
        parsed,
        shots,
        statevector_max_qubits=statevector_max_qubits,
        run_seconds=run_seconds,
    )
    if listed is None:
        return Cost(Decimal(0), Decimal(0), "USD", f"{target.name}: not in the price book")
    list_cost = Decimal(repr(listed.amount))
    charged = list_cost if mode == Mode.CLOUD else Decimal(0)
    return Cost(charged, list_cost, listed.currency, f"pricebook {listed.pricebook_version}")


def finished_job_cost(
    job_id: str,
    supplier: str | None,
    backend: str,
    parsed: ParsedCircuit,
    shots: int,
    mode: str | None,
    *,
    statevector_max_qubits: int,
    execution_time_ms: float | None,
) -> Cost:
    """What finished job `job_id` is charged (`job_cost`, for the time a cloud supplier
    reported); a circuit that cannot be mapped for a list price is charged nothing."""
    run_seconds = None
    if mode == Mode.CLOUD and execution_time_ms:
        run_seconds = execution_time_ms / 1000.0
    try:
        return job_cost(
            supplier,
            backend,
            parsed,
            shots,
            mode,
            statevector_max_qubits=statevector_max_qubits,
            run_seconds=run_seconds,
        )
    except ApiError as exc:
        logger.warning("job %s: no list price (%s)", job_id, exc.error_code)
        return Cost(Decimal(0), Decimal(0), "USD", f"unpriced: {exc.error_code}")


def estimated_prices(
    target: Target, mode: str, *, shots: int, gates: GateCounts, run_seconds: float
) -> tuple[Price | None, Price | None]:
    """(what a run of `shots` shots of a circuit counting `gates` costs on `target` as it runs
    now, in `mode`; what the real device would cost), the device billed `run_seconds` where it
    bills time. None where the book has no price. The local simulator's run costs `LOCAL_PRICE`."""
    cost = cost_model(target)
    device_cost = None
    if cost is not None:
        device_cost = price(cost, shots=shots, gates=gates, run_seconds=run_seconds)
    if mode == Mode.EMULATED and device_cost is not None:
        return replace(device_cost, amount=0.0, formula="emulated: free"), device_cost
    return device_cost, device_cost
