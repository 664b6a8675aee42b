"""Every emulated backend's Bell time (1024 shots), next to ideal Aer, measured in one run.

For each gate-model target of every supplier: the adapter's `emulate` (what the worker calls
when the supplier has no credentials) after one warm-up run (which builds the device, its pass
manager and noise model, and caches the transpiled circuit), then the median of `RUNS` runs.
The ideal baseline is the local simulator (`shared.suppliers.aer.run`) on the same parsed
circuit, timed the same way. Printed: ms per run for both, their ratio, the first (cold) run,
and the share of 00/11 outcomes (1.0 ideal; lower means the device's noise is modelled).
Figures are printed, never asserted.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/supplier_emulation.py`.
"""

from __future__ import annotations

import statistics
import time

from _common import BELL
from shared.circuits import CircuitLimits, parse_circuit
from shared.config import Settings
from shared.suppliers import aer
from shared.suppliers.base import EmulatedRun
from shared.suppliers.catalog import catalog
from shared.suppliers.registry import SupplierRegistry

SHOTS = 1024
RUNS = 15


def timed(call: object) -> tuple[float, EmulatedRun | aer.AerRun]:
    started = time.perf_counter()
    result = call()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000.0, result


def main() -> None:
    settings = Settings.from_env({})
    registry = SupplierRegistry(settings)
    parsed = parse_circuit(BELL, CircuitLimits.from_limits(settings.limits, 156))
    limit = settings.limits.statevector_max_qubits

    def ideal() -> aer.AerRun:
        return aer.run(parsed, SHOTS, statevector_max_qubits=limit)

    ideal()
    ideal_ms = statistics.median(timed(ideal)[0] for _ in range(RUNS))
    print(f"Bell, {SHOTS} shots, median of {RUNS} runs after a warm-up; Aer {ideal_ms:.2f} ms")
    print(f"{'supplier/backend':44} {'kind':15} {'first ms':>9} {'ms':>8} {'x Aer':>7}", end="")
    print(f" {'00+11':>6}")
    for info in catalog().values():
        adapter = registry.adapter(info.id)
        for target in info.targets():
            if not target.gate_model:
                continue

            def emulate() -> EmulatedRun:
                return adapter.emulate(target, parsed, SHOTS)  # noqa: B023

            first_ms, _ = timed(emulate)
            runs = [timed(emulate) for _ in range(RUNS)]
            ms = statistics.median(r[0] for r in runs)
            counts = runs[-1][1].counts
            bell_share = (counts.get("00", 0) + counts.get("11", 0)) / SHOTS
            print(
                f"{info.id + '/' + target.name:44} {target.kind.value:15} {first_ms:9.1f} "
                f"{ms:8.2f} {ms / ideal_ms:7.1f} {bell_share:6.3f}"
            )


if __name__ == "__main__":
    main()
