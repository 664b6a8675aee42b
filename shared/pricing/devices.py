"""What a circuit costs on a target's device, by the price book.

A time-billed device (IBM, Rigetti on Azure, Braket's simulators) bills the seconds the run
takes: those the supplier reported once it ran, else the device's own time estimated from its
calibration (`device_seconds`: shots x (one shot's critical path after layout, from
`shared.suppliers.emulation.on_device`, + the repetition delay)); for a simulator, the local
simulator's estimate stands in.
"""

from __future__ import annotations

from shared.circuits import ParsedCircuit
from shared.pricing.book import cost_model
from shared.pricing.formulas import Price, gate_counts, price
from shared.suppliers import aer
from shared.suppliers.base import DeviceKind, Target
from shared.suppliers.emulation import OnDevice, on_device

# IBM's documented default repetition delay between shots; the other QPUs' data files give
# none, so their per-shot time is the circuit's alone.
_REP_DELAY_S = {"ibm_quantum": 250e-6}


def device_seconds(target: Target, mapped: OnDevice, shots: int) -> float:
    """How long `shots` of a circuit mapped onto a QPU take on it."""
    return shots * (mapped.shot_seconds + _REP_DELAY_S.get(target.supplier, 0.0))


def device_price(
    target: Target,
    parsed: ParsedCircuit,
    shots: int,
    *,
    statevector_max_qubits: int,
    run_seconds: float | None = None,
) -> Price | None:
    """What `shots` of `parsed` cost on `target`'s device by the price book (None when the
    book has no price for it). Time-priced targets bill `run_seconds` when the supplier
    reported them, else the run time the device is estimated to take. Raises `ApiError` when
    the circuit cannot be mapped onto the device."""
    cost = cost_model(target)
    if cost is None:
        return None
    if run_seconds is None:
        if target.kind is DeviceKind.SIMULATOR:
            ns = aer.estimated_ns(parsed, shots, statevector_max_qubits=statevector_max_qubits)
            run_seconds = ns / 1e9
        else:
            run_seconds = device_seconds(target, on_device(target, parsed), shots)
    return price(cost, shots=shots, gates=gate_counts(parsed), run_seconds=run_seconds)
