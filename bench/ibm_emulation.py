"""IBM emulation: our emulated ibm_brisbane beside qiskit-ibm-runtime's own local mode.

Bell, 1024 shots, measured in the same run, one side after the other:
- ours: `IBMQuantum(settings).emulate(ibm_brisbane, ...)`, the adapter's emulation with no
  credentials: the circuit transpiled to FakeBrisbane's target (cached per circuit), Aer on the
  noise model of the qubits it uses (cached per qubit set). The first call, which builds the fake
  backend and the noise model, is printed on its own; then WARMUP untimed calls, then RUNS_OURS
  timed ones;
- local mode: `SamplerV2(mode=FakeBrisbane())` on the circuit transpiled to FakeBrisbane once
  beforehand (as that mode requires; the transpile is not timed), `sampler.run(...).result()`:
  one untimed call, then RUNS_LOCAL timed ones (about 3 s each).
Printed: the median and p90 ms of each side, the ratio of the medians (the aim: ours at least
100 times faster), and the total variation distance between the two sides' counts, each summed
over all its timed runs, beside what sampling noise alone gives for those shot totals. Figures are
printed, never asserted.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/ibm_emulation.py`.
"""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from collections import Counter
from typing import Any

from _common import BELL, pct
from shared.circuits import CircuitLimits, parse_circuit
from shared.config import Settings
from shared.suppliers.catalog import supplier
from shared.suppliers.ibm import IBMQuantum, sampler_counts

SHOTS = 1024
WARMUP = 10
RUNS_OURS = 200
RUNS_LOCAL = 5
AIM_RATIO = 100.0


def tvd(p: Counter[str], q: Counter[str]) -> float:
    n_p, n_q = sum(p.values()), sum(q.values())
    return 0.5 * sum(abs(p[k] / n_p - q[k] / n_q) for k in set(p) | set(q))


def noise_tvd(counts: Counter[str], n_a: int, n_b: int) -> float:
    """The expected TVD between two samples of `n_a` and `n_b` shots of one distribution (the
    one `counts` estimates): 1/2 sum over outcomes of E|normal(0, s)| = s sqrt(2/pi)."""
    total = sum(counts.values())
    spread = 0.0
    for value in counts.values():
        p = value / total
        spread += math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b)) * math.sqrt(2 / math.pi)
    return spread / 2


def main() -> None:
    target = supplier("ibm_quantum").target("ibm_brisbane")
    parsed = parse_circuit(BELL, CircuitLimits(262_144, 127, 1024, 1_000_000, 100_000))
    adapter = IBMQuantum(Settings())

    t0 = time.perf_counter()
    first = adapter.emulate(target, parsed, SHOTS)
    first_ms = (time.perf_counter() - t0) * 1000
    for _ in range(WARMUP):
        adapter.emulate(target, parsed, SHOTS)
    ours_times: list[float] = []
    ours_counts: Counter[str] = Counter()
    for _ in range(RUNS_OURS):
        t0 = time.perf_counter()
        run = adapter.emulate(target, parsed, SHOTS)
        ours_times.append(time.perf_counter() - t0)
        ours_counts.update(run.counts)

    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.fake_provider import FakeBrisbane

    backend: Any = FakeBrisbane()
    # The same pass manager and seed as ours: both sides run on the same physical qubits.
    pass_manager = generate_preset_pass_manager(
        optimization_level=1, target=backend.target, seed_transpiler=0
    )
    isa = pass_manager.run(parsed.circuit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SamplerV2's own, since 0.50.0
        sampler = SamplerV2(mode=backend)
    sampler.run([isa], shots=SHOTS).result()
    local_times: list[float] = []
    local_counts: Counter[str] = Counter()
    for _ in range(RUNS_LOCAL):
        t0 = time.perf_counter()
        result = sampler.run([isa], shots=SHOTS).result()
        local_times.append(time.perf_counter() - t0)
        local_counts.update(sampler_counts(result))

    ours_ms = statistics.median(ours_times) * 1000
    local_ms = statistics.median(local_times) * 1000
    ratio = local_ms / ours_ms
    distance = tvd(ours_counts, local_counts)
    expected = noise_tvd(local_counts, RUNS_OURS * SHOTS, RUNS_LOCAL * SHOTS)
    print(
        f"Bell on ibm_brisbane, {SHOTS} shots per run\n"
        f"  ours, adapter emulate       median {ours_ms:9.2f} ms  p90 "
        f"{pct(ours_times, 0.9):9.2f} ms  ({RUNS_OURS} runs after {WARMUP} warm-up; "
        f"first call {first_ms:.0f} ms)\n"
        f"    {first.method}\n"
        f"  SDK local mode SamplerV2    median {local_ms:9.2f} ms  p90 "
        f"{pct(local_times, 0.9):9.2f} ms  ({RUNS_LOCAL} runs after 1 warm-up; "
        f"transpile not timed)\n"
        f"  local mode / ours           {ratio:9.1f}x\n"
        f"  TVD between their counts    {distance:.4f}  ({RUNS_OURS * SHOTS} vs "
        f"{RUNS_LOCAL * SHOTS} shots; sampling noise alone gives about {expected:.4f})\n"
        f"    ours  {dict(sorted(ours_counts.items()))}\n"
        f"    local {dict(sorted(local_counts.items()))}"
    )
    met = "met" if ratio >= AIM_RATIO else "NOT met"
    print(f"  aim: ours at least {AIM_RATIO:g}x faster; this run {ratio:.0f}x -> {met}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
