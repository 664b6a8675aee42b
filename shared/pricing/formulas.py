"""What a task costs on a target: its circuit's gate counts and the price book's formula.

`gate_counts(parsed)` counts what the per-gate formulas need (IonQ's AQT and Quantinuum's HQC
on Azure Quantum); `price(cost, ...)` applies a target's `CostModel` (its price book entry,
`shared.pricing.book.cost_model(target)`) to a task and writes the formula out with the task's
numbers filled in.

Arithmetic is decimal: each rate is taken as the decimal the price book writes (never a binary
float's expansion), so 97.50 + 1.195 is 98.695 exactly. Only the final amount is rounded, half
up, to cents for USD and to 2 decimals for HQC (98.695 USD is 98.70 USD). An emulated run
costs nothing; what `price` gives for it is what the real device would have cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from shared.circuits import ParsedCircuit
from shared.pricing.book import CostModel
from shared.suppliers.aer import has_measurement

# IonQ's published rule: a gate on k >= 3 qubits (a multi-controlled gate) bills as
# 6 x (k - 2) two-qubit gates; Azure Quantum's IonQ pricing counts gates the same way.
TWO_QUBIT_GATES_PER_EXTRA_QUBIT = 6

_CENTS = Decimal("0.01")


@dataclass(frozen=True)
class GateCounts:
    """N1q, N2q and Nm of the pricing formulas."""

    n1q: int = 0
    n2q: int = 0
    measurements: int = 0

    def __add__(self, other: GateCounts) -> GateCounts:
        return GateCounts(
            self.n1q + other.n1q,
            self.n2q + other.n2q,
            self.measurements + other.measurements,
        )


_NOTHING = GateCounts()


def gate_counts(parsed: ParsedCircuit) -> GateCounts:
    """The gates and measurements of `parsed.circuit`, as the per-gate price formulas count them.

    - A gate on 1 qubit counts in `n1q`, on 2 qubits in `n2q`; a gate on k >= 3 qubits (ccx,
      cswap, c3x, ...) counts as 6 x (k - 2) two-qubit gates, IonQ's published rule for
      multi-controlled gates. Gates on no qubit (a global phase) count nothing.
    - qiskit's own gates (its standard library: `swap`, `cu`, `unitary`, ...) count as one gate
      each; a gate the program defines (`gate bell a, b { ... }`) counts as what its
      definition applies, since that is what the supplier receives.
    - `measure` counts one in `measurements`, and so does `reset`: a state preparation, which
      Quantinuum's Nm counts with the measurements. A circuit that measures nothing is run
      with every qubit measured (as `shared.suppliers.aer.has_measurement` decides, the rule
      the runs follow), so it counts one measurement per qubit.
    - `barrier`, `delay` and the classical instructions (`store`, `break`, `continue`) count
      nothing.
    - Control flow: each block counts once, whatever runs at run time. So both branches of an
      if/else and every case of a switch count (an upper bound), and a for loop's body counts
      once, not once per iteration (a lower bound). IonQ takes no control flow at all;
      Quantinuum prices what it executes, which only the run knows.
    """
    counts = _Counter().block(parsed.circuit)
    if not has_measurement(parsed.circuit):
        counts += GateCounts(measurements=int(parsed.circuit.num_qubits))
    return counts


class _Counter:
    """Walks a circuit once; a program's own gate is expanded once per (name, qubits, clbits),
    as the parser counts operations, so counting costs the size of the definitions."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, int, int], GateCounts] = {}

    def block(self, circuit: Any) -> GateCounts:
        total = _NOTHING
        for instruction in circuit.data:
            total += self.operation(instruction.operation)
        return total

    def operation(self, op: Any) -> GateCounts:
        from qiskit.circuit import ControlFlowOp, Gate

        if isinstance(op, ControlFlowOp):
            total = _NOTHING
            for block in op.blocks:
                total += self.block(block)
            return total
        if op.name in ("measure", "reset"):
            return GateCounts(measurements=1)
        if not isinstance(op, Gate):  # barrier, delay, store, break_loop, continue_loop
            return _NOTHING
        if _library_gate(op):
            return _by_width(int(op.num_qubits))
        key = (str(op.name), int(op.num_qubits), int(op.num_clbits))
        known = self.memo.get(key)
        if known is None:
            try:
                definition = op.definition
            except Exception:  # a definition that cannot be built: price the gate itself
                definition = None
            known = _by_width(key[1]) if definition is None else self.block(definition)
            self.memo[key] = known
        return known


def _library_gate(op: Any) -> bool:
    return str(getattr(op, "base_class", type(op)).__module__).startswith("qiskit.circuit.library")


def _by_width(qubits: int) -> GateCounts:
    if qubits == 1:
        return GateCounts(n1q=1)
    if qubits == 2:
        return GateCounts(n2q=1)
    if qubits >= 3:
        return GateCounts(n2q=TWO_QUBIT_GATES_PER_EXTRA_QUBIT * (qubits - 2))
    return _NOTHING


@dataclass(frozen=True)
class Price:
    """What a task costs on a target, and how that was worked out.

    `amount` is rounded half up to cents (USD) or 2 decimals (HQC); `formula` is the price
    book's formula with the task's numbers filled in (`"free"` for a free target); `source`,
    `as_of` and `pricebook_version` say where the rates come from."""

    amount: float
    currency: str  # "USD" or "HQC"
    formula: str
    source: str
    as_of: str
    pricebook_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def price(
    cost: CostModel,
    *,
    shots: int,
    gates: GateCounts,
    run_seconds: float,
    error_mitigation: bool = False,
) -> Price:
    """The price of a task of `shots` shots whose circuit counts `gates`, on a target priced
    by `cost`.

    Time-priced targets (IBM, Rigetti on Azure, Braket's simulators) bill `run_seconds` (QPU or
    simulator time, as the supplier reports it or as estimated), rounded up to the entry's
    increment and at least its minimum. `error_mitigation` takes the entry's
    `per_task_error_mitigation` as the per-task charge where it has one (IonQ on Azure: m =
    97.50 USD instead of 12.4166); elsewhere it changes nothing. A free target costs 0.0 with
    formula "free". `ValueError` for negative shots or seconds.
    """
    if shots < 0 or run_seconds < 0:
        raise ValueError("shots and run_seconds are never negative")
    currency = cost.unit
    if cost.free:
        return _price(cost, 0.0, "free")
    places = 2 if currency == "USD" else 0
    mitigated = error_mitigation and bool(cost.per_task_error_mitigation)
    base = _dec(cost.per_task_error_mitigation if mitigated else cost.per_task)
    total = base
    terms = [_num(base, places) + (" (with error mitigation)" if mitigated else "")] if base else []
    for rate, count, what in (
        (cost.per_shot, None, ""),
        (cost.per_1q_gate_shot, gates.n1q, "1q gates"),
        (cost.per_2q_gate_shot, gates.n2q, "2q gates"),
        (cost.per_measure_shot, gates.measurements, "measurements"),
    ):
        if not rate:
            continue
        per = _dec(rate)
        if count is None:
            total += per * shots
            terms.append(f"{_num(per, places)} x {shots} shots")
        else:
            total += per * count * shots
            terms.append(f"{_num(per, places)} x {count} {what} x {shots} shots")
    if cost.per_minute:
        run = _dec(run_seconds)
        billed = _billed_seconds(run, cost)
        total += _dec(cost.per_minute) * billed / 60
        term = f"{_num(_dec(cost.per_minute), places)} per minute x {_num(billed, 0)} s / 60"
        if billed != run:
            term += f" (a {_num(run, 0)} s run billed as {_num(billed, 0)} s)"
        terms.append(term)
    amount = total.quantize(_CENTS, rounding=ROUND_HALF_UP)
    formula = f"{' + '.join(terms) or '0'} = {amount} {currency}"
    return _price(cost, float(amount), formula)


def _billed_seconds(run: Decimal, cost: CostModel) -> Decimal:
    """`run` rounded up to a multiple of the entry's increment, and at least its minimum."""
    billed = run
    if cost.increment_seconds:
        step = _dec(cost.increment_seconds)
        billed = (run / step).to_integral_value(rounding=ROUND_CEILING) * step
    return max(billed, _dec(cost.minimum_seconds))


def _price(cost: CostModel, amount: float, formula: str) -> Price:
    return Price(
        amount=amount,
        currency=cost.unit,
        formula=formula,
        source=cost.source,
        as_of=cost.as_of,
        pricebook_version=cost.version,
    )


def _dec(value: float) -> Decimal:
    """The decimal a number was written as (`repr` of a float is its shortest round trip)."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _num(value: Decimal, places: int) -> str:
    """`value` in plain notation, with at least `places` decimals (0.3 -> "0.30" for USD)."""
    text = format(value.normalize(), "f")
    decimals = len(text.partition(".")[2])
    if decimals < places:
        text = format(value, f".{places}f")
    return text
