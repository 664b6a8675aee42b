"""A noisy emulation's estimated time against the time it took, per device family, width and
method, measured in one run.

For one device of each emulated family (IBM's calibration snapshots, IQM, IonQ, Quantinuum,
Rigetti) and two circuit families (GHZ: one CX across each cut; brickwork: 6 layers of RY on
every qubit and CX between neighbours, so entanglement grows), at widths 2 to 30 (as far as the
device goes): every method the gateway can run it with (`shared.suppliers.emulation.plans`:
density matrix, statevector trajectories, matrix product state trajectories) is run through the
device's own `NoisyDevice.run`, which is what a worker runs, and timed. Each measured run starts
from cold caches for its circuit (mapping to the device, the restricted noise model); the
device itself (its target and pass manager, built once per process, up to 1.5 s for IBM's) is
warmed first and not counted. Printed per row: the estimate, the measured time, their ratio,
and the method the gateway picks (`*`). A run whose estimate is over `SKIP_OVER_S` is not run
(printed as skipped, with its estimate); one still going after `LIMIT_S` is stopped and printed
as at least that long. Figures are printed, never asserted; the aim (every ratio within a factor
of 2) is printed with how many rows met it.
Run: `PYTHONPATH=. .venv/bin/python bench/emulation_estimates.py [--quick] [--device NAME]`
(`--quick`: widths 4, 12 and 20; `--device`: that backend only; `--skip-over S`: run the rows
estimated up to S seconds, each stopped at the larger of 3 S and `LIMIT_S`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from shared.circuits import CircuitLimits, parse_circuit
from shared.config import Settings
from shared.suppliers import emulation
from shared.suppliers.catalog import supplier
from shared.suppliers.processes import Processes, RunTimeLimitExceeded

SHOTS = 1000
WIDTHS = (2, 4, 8, 12, 16, 20, 24, 30)
LAYERS = 6
SKIP_OVER_S = 40.0
LIMIT_S = 120.0
DEVICES = (
    ("ibm_quantum", "ibm_brisbane"),
    ("braket", "garnet"),
    ("azure_quantum", "ionq.qpu.aria-1"),
    ("azure_quantum", "quantinuum.qpu.h2-1"),
    ("azure_quantum", "rigetti.qpu.cepheus-1-108q"),
)


def ghz(n: int) -> str:
    entangle = "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\nh q[0];\n'
        f"{entangle}measure q -> c;\n"
    )


def brickwork(n: int) -> str:
    body = "".join(
        "".join(f"ry({0.3 + 0.1 * ((i * 7 + layer) % 23):.2f}) q[{i}];\n" for i in range(n))
        + "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(layer % 2, n - 1, 2))
        for layer in range(LAYERS)
    )
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n{body}'
        "measure q -> c;\n"
    )


CIRCUITS = {"ghz": ghz, "brickwork": brickwork}


def measure(supplier_id: str, backend: str, qasm: str, chosen: emulation.Plan) -> float:
    """In a simulator process: `NoisyDevice.run` of `qasm` with `method`, from cold caches for
    this circuit (the device warmed first); seconds taken."""
    settings = Settings.from_env({})
    target = supplier(supplier_id).target(backend)
    device = emulation.target_device(target)
    limits = CircuitLimits.from_limits(settings.limits, 200)
    device.transpile(parse_circuit(ghz(3), limits))  # the device's target and pass manager
    parsed = parse_circuit(qasm, limits)
    device._transpiled.clear()  # noqa: SLF001 - cold for this circuit, as a new one is
    device._noise.clear()  # noqa: SLF001
    started = time.perf_counter()
    device.run(parsed, SHOTS, plan=lambda _: chosen, seed=7)
    return time.perf_counter() - started


def main() -> None:
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else None
    skip_over = SKIP_OVER_S
    if "--skip-over" in sys.argv:
        skip_over = float(sys.argv[sys.argv.index("--skip-over") + 1])
    limit = max(LIMIT_S, 3 * skip_over)
    settings = Settings.from_env({})
    processes = Processes(1)
    rows = met = 0
    print(
        f"{SHOTS} shots; estimate vs measured seconds; * = the method the gateway picks; "
        f"runs estimated over {skip_over:g} s skipped, runs over {limit:g} s stopped"
    )
    print(f"{'device':28} {'circuit':9} {'n':>3} {'method':22} {'estimate':>9} {'measured':>9} "
          f"{'ratio':>6}")  # fmt: skip
    for supplier_id, backend in DEVICES:
        if only is not None and backend != only:
            continue
        target = supplier(supplier_id).target(backend)
        for name, build in CIRCUITS.items():
            for n in WIDTHS:
                if n > target.num_qubits or (quick and n not in (4, 12, 20)):
                    continue
                limits = CircuitLimits.from_limits(settings.limits, 200)
                parsed = parse_circuit(build(n), limits)
                options = emulation.plans(target, parsed, SHOTS, limits=settings.limits)
                chosen = min(options, key=lambda p: p.seconds)
                for option in options:
                    mark = "*" if option == chosen else " "
                    head = f"{backend:28} {name:9} {n:>3} {mark}{option.method:21}"
                    if option.seconds > skip_over:
                        print(f"{head} {option.seconds:9.2f} {'skipped':>9}", flush=True)
                        continue
                    taken: Any
                    try:
                        taken = processes.run(
                            measure,
                            supplier_id,
                            backend,
                            build(n),
                            option,
                            what="the run",
                            seconds=limit,
                        )
                        ratio = option.seconds / taken
                        shown = f"{taken:9.2f} {ratio:6.2f}"
                    except RunTimeLimitExceeded:
                        ratio = option.seconds / limit
                        shown = f"{'>' + format(limit, 'g'):>9} {'<' + format(ratio, '.2f'):>6}"
                    rows += 1
                    met += 0.5 <= ratio <= 2.0
                    print(f"{head} {option.seconds:9.2f} {shown}", flush=True)
    processes.close()
    print(f"within a factor of 2: {met} of {rows} rows measured (aim: all)")


if __name__ == "__main__":
    main()
