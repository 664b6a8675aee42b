"""Does a circuit fit a backend? Checked at submit, so a misfit is a 400 before anything is stored.

- The device must be gate-model, and (in the cloud) still offered by its supplier.
- The circuit's qubits must fit the device's.
- Mid-circuit measurement, reset and classical control flow only on devices that have them.
- Emulated, the local stand-in must be able to run it: a noisy emulation simulates the qubits
  the circuit uses, within `max_run_seconds` by its estimate (`emulation.plan`), an ideal one is
  the local Aer simulator
  (`aer.check_runnable`), and some stand-ins have their own limit (`emulation_max_qubits`).
"""

from __future__ import annotations

from shared.circuits import ParsedCircuit
from shared.circuits.bitorder import MidCircuitMeasurement, clbit_sources
from shared.config import Limits
from shared.errors import CircuitDoesNotFit, LimitExceeded
from shared.suppliers import aer, emulation
from shared.suppliers.base import DeviceKind, Mode, Target


def check_fits(
    target: Target, parsed: ParsedCircuit, shots: int, *, mode: Mode, limits: Limits
) -> None:
    """Raise `CircuitDoesNotFit` (400) with the reason when `parsed` cannot run on `target`."""
    where = f"{target.supplier} backend {target.name}"
    if not target.gate_model:
        raise CircuitDoesNotFit(
            f"{where} is an analog device, not gate-model: it does not run circuits",
            error_code="NOT_GATE_MODEL",
        )
    if mode is Mode.CLOUD and not target.available:
        raise CircuitDoesNotFit(
            f"{where} is retired at the supplier", error_code="BACKEND_UNAVAILABLE"
        )
    if parsed.num_qubits > target.num_qubits:
        raise CircuitDoesNotFit(
            f"The circuit has {parsed.num_qubits} qubits; {where} has {target.num_qubits}"
        )
    _check_operations(target, parsed, where)
    if mode is Mode.EMULATED:
        _check_emulation(target, parsed, shots, limits, where)


def _check_operations(target: Target, parsed: ParsedCircuit, where: str) -> None:
    names = _operation_names(parsed.circuit)
    if "reset" in names and not target.reset:
        raise CircuitDoesNotFit(f"{where} does not support reset")
    flow = names & {"if_else", "while_loop", "for_loop", "switch_case", "box"}
    if flow and not target.classical_control:
        raise CircuitDoesNotFit(
            f"{where} does not support classical control flow ({', '.join(sorted(flow))})"
        )
    if not target.mid_circuit_measurement and not flow:
        try:
            clbit_sources(parsed.circuit)
        except MidCircuitMeasurement as exc:
            raise CircuitDoesNotFit(
                f"{where} measures only at the end of a circuit: {exc}"
            ) from None


def _check_emulation(
    target: Target, parsed: ParsedCircuit, shots: int, limits: Limits, where: str
) -> None:
    own = target.emulation_max_qubits
    if own is not None and parsed.num_qubits > own:
        raise CircuitDoesNotFit(
            f"The emulation of {where} runs at most {own} qubits; the circuit has "
            f"{parsed.num_qubits} (the cloud device takes {target.num_qubits})"
        )
    if target.kind is DeviceKind.SIMULATOR:
        aer.check_runnable(
            parsed,
            shots,
            statevector_max_qubits=limits.statevector_max_qubits,
            max_run_seconds=limits.max_run_seconds,
        )
    elif target.kind is not DeviceKind.SYNTAX_CHECKER:
        chosen = emulation.noisy_plan(target, parsed, shots, limits=limits)
        if chosen.seconds > limits.max_run_seconds:
            raise LimitExceeded(
                f"With the device's noise this circuit and shot count would run for about "
                f"{chosen.seconds:.0f} s in emulation ({chosen.method}), more than the limit of "
                f"{limits.max_run_seconds:g} s; use fewer shots, operations or qubits",
                error_code="RUN_TIME_LIMIT_EXCEEDED",
            )


def _operation_names(circuit: object) -> set[str]:
    names: set[str] = set()
    for inst in getattr(circuit, "data", ()):
        operation = inst.operation
        names.add(operation.name)
        for block in getattr(operation, "blocks", ()):
            names |= _operation_names(block)
    return names
