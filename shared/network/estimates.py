"""What one circuit would cost, wait for, take and score on each backend.

For each backend, `estimate` answers:

- `fits` and `reasons`: the submit-time checks (`shared.suppliers.fit.check_fits`, or the local
  simulator's `aer.check_runnable`), then the mapping to the device itself (connectivity,
  basis), which is what `emulation.on_device` does.
- `fidelity`: the estimated success probability after layout (`emulation.on_device`); 1.0 on
  an ideal simulator.
- `device_run_s`: the real device's time: shots x (one shot's critical path + the repetition
  delay) for a QPU; for a simulator, the local simulator's estimate stands in.
- `run_s`: how long the run takes as it runs now: the emulation's estimate when emulated
  (`emulation.estimated_seconds`, as a submit answers), the device's time in the cloud.
- `wait_s`: this gateway's open jobs on the backend, in waves of the worker's parallelism,
  times the measured mean job time. The supplier's own queue is not read.
- `cost`: what this run costs (nothing when emulated or local), and `device_cost`: what the
  real device would cost (`shared.pricing.costs.estimated_prices`, by the price book).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from shared.circuits import ParsedCircuit
from shared.config import Limits
from shared.errors import ApiError
from shared.pricing.costs import LOCAL_PRICE, estimated_prices
from shared.pricing.devices import device_seconds
from shared.pricing.formulas import GateCounts, Price, gate_counts
from shared.suppliers import aer, emulation
from shared.suppliers.backends import Backend
from shared.suppliers.base import DeviceKind, Mode
from shared.suppliers.fit import check_fits


@dataclass(frozen=True)
class Situation:
    """What the estimate needs to know about the network now."""

    modes: Mapping[str, Mode]  # per supplier id
    online: Mapping[str, bool]  # per backend id
    queue_depth: Mapping[str, int]  # per backend id: this gateway's open jobs
    mean_job_s: float  # measured mean execution time of recent jobs
    parallelism: int  # jobs a worker instance runs at once
    limits: Limits


@dataclass(frozen=True)
class BackendEstimate:
    backend: Backend
    mode: str  # "local", "emulated" or "cloud"
    online: bool
    fits: bool
    reasons: tuple[str, ...]
    fidelity: float | None
    run_s: float | None
    device_run_s: float | None
    wait_s: float
    queue_depth: int
    cost: Price | None
    device_cost: Price | None

    @property
    def usable(self) -> bool:
        return self.online and self.fits

    def cost_usd(self, device: bool = False) -> float:
        """The cost in USD for ranking; a credit-priced (HQC) or unpriced run ranks last."""
        chosen = self.device_cost if device else self.cost
        if chosen is None or chosen.currency != "USD":
            return float("inf")
        return chosen.amount


def wait_seconds(depth: int, parallelism: int, mean_job_s: float) -> float:
    """The wait behind `depth` open jobs: in waves of `parallelism`, each the mean job time."""
    return round(math.ceil(depth / max(parallelism, 1)) * mean_job_s, 3)


def mode_of(backend: Backend, situation: Situation) -> str:
    if backend.local:
        return "local"
    return situation.modes[backend.supplier].value


def estimate(
    backends: list[Backend], parsed: ParsedCircuit, shots: int, situation: Situation
) -> list[BackendEstimate]:
    """One estimate per backend, in the order given."""
    gates = gate_counts(parsed)
    return [_one(b, parsed, shots, gates, situation) for b in backends]


def _one(
    backend: Backend, parsed: ParsedCircuit, shots: int, gates: GateCounts, situation: Situation
) -> BackendEstimate:
    mode = mode_of(backend, situation)
    depth = situation.queue_depth.get(backend.id, 0)
    result = BackendEstimate(
        backend=backend,
        mode=mode,
        online=situation.online.get(backend.id, False),
        fits=False,
        reasons=(),
        fidelity=None,
        run_s=None,
        device_run_s=None,
        wait_s=wait_seconds(depth, situation.parallelism, situation.mean_job_s),
        queue_depth=depth,
        cost=None,
        device_cost=None,
    )
    if backend.retired and backend.target is not None:  # nothing to estimate: it never runs
        return replace(result, reasons=(f"BACKEND_RETIRED: {backend.target.description}",))
    limits = situation.limits
    sim_s = aer.estimated_ns(parsed, shots, statevector_max_qubits=limits.statevector_max_qubits)
    sim_s /= 1e9
    target = backend.target
    try:
        if target is None:
            aer.check_runnable(
                parsed,
                shots,
                statevector_max_qubits=limits.statevector_max_qubits,
                max_run_seconds=limits.max_run_seconds,
            )
            return replace(
                result,
                fits=True,
                fidelity=1.0,
                run_s=round(sim_s, 6),
                device_run_s=round(sim_s, 6),
                cost=LOCAL_PRICE,
                device_cost=LOCAL_PRICE,
            )
        check_fits(target, parsed, shots, mode=Mode(mode), limits=limits)
        mapped = emulation.on_device(target, parsed)
    except ApiError as exc:
        return replace(result, reasons=(f"{exc.error_code}: {exc.detail}",))
    if target.kind is DeviceKind.SIMULATOR:
        device_s = emulated_s = sim_s
    else:
        device_s = device_seconds(target, mapped, shots)
        emulated_s = emulation.estimated_seconds(target, parsed, shots, limits=limits)
    cost, device_cost = estimated_prices(
        target, mode, shots=shots, gates=gates, run_seconds=device_s
    )
    run_s = emulated_s if mode == Mode.EMULATED else device_s
    return replace(
        result,
        fits=True,
        fidelity=round(mapped.fidelity, 6),
        run_s=round(run_s, 6),
        device_run_s=round(device_s, 6),
        cost=cost,
        device_cost=device_cost,
    )
