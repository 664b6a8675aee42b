"""The local simulator: qiskit Aer, with the method chosen from the circuit.

Facts this module is built on (design.md, "Aer"): `transpile()` rebuilds its pass manager on
every call (about 46 ms) while a prepared pass manager runs a small circuit in about 0.1 ms, so
pass managers are built once per method and reused, and transpiled circuits are cached by
(qasm_hash, method). Statevector costs memory exponential in the qubits, so Clifford circuits
go to the stabilizer method and wide ones to matrix product state.

Thread safety: up to 16 threads call `run` at once. A qiskit pass manager is not safe to share
between threads (every pass keeps the running property set on itself), so each method has a pool
of pass managers, one per concurrent caller at most; the LRU cache and the counters are guarded
by a lock. Aer itself runs each call in its own controller.

Heavy circuits run in a process pool. Aer holds the GIL for its whole C++ run (a 1.7 s
statevector run left another thread of the process 1.4% of its normal rate), and HTTP functions
and the queue worker share one Python process: a heavy run inline would freeze every request,
`GET /health` included. A small circuit runs inline as before, since a hop to another process
costs more than its whole run (Bell: about 1 ms inline). A run is heavy when its estimated cost
reaches `HEAVY_RUN_NS` (20 ms); the estimate, in nanoseconds, is calibrated on a 2-core box and
errs towards heavy:

    operations * (15 us + 1.5 ns * W) + shots * S      when Aer samples the shots from one run
    operations * 15 us + shots * (50 us + operations * (2 us + 10 ns * W))    when it cannot

- W, the work per operation: 2^qubits for statevector; 2^(1.5 * qubits) for matrix product state
  (a bond dimension up to 2^(qubits/2), cubed per two-qubit gate: in practice every matrix
  product state run but the smallest is heavy; a 30-qubit chain of 8 layers ran 12 s); 0 for
  stabilizer. The 15 us per operation is Aer's and the transpiler's Python work per instruction.
- S, the cost of one shot drawn: 1 us for statevector; 3 us * qubits for matrix product state;
  2.5 us + 10 ns * qubits^2 for stabilizer, which measures every shot on its tableau.
- Aer samples all shots from one run only when the circuit measures at the end
  (`ParsedCircuit.final_measurements`: nothing but measurements after the first measurement, no
  reset, no control flow); otherwise every shot is a run of its own, whose every operation
  (each iteration of a loop counted) costs Aer about 2 us and 10 ns per amplitude: an empty loop
  of 500,000 iterations at 1,024 shots runs 14 minutes, and is refused at submit.

A heavy run goes to a simulator process (`shared.suppliers.processes`): the child receives the
`ParsedCircuit` pickled (circuit included), runs the same transpile-and-run code as an inline
run, with its own transpile cache, and sends back counts and its own timing, so
`execution_time_ms` never includes the hop or the wait for a free process.
`transpile_cache_info` counts this process's cache only. A refusal in the child comes back as
the same `SimulationError`; a child that dies (the OOM killer) answers its job with
`SimulatorUnavailable`, a 503 the queue retries. A run is held to its `Watch`: past its
wall-clock limit its process is killed and the job fails with RUN_TIME_LIMIT_EXCEEDED, whatever
the estimate said; a run whose job is cancelled is killed too (`RunStopped`).

qiskit_aer is imported inside the functions, so importing this module costs nothing; neither
does it start a process before the first heavy run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.circuits import ParsedCircuit
from shared.errors import LimitExceeded, one_line
from shared.suppliers import processes
from shared.suppliers.processes import (
    Refused,
    RunStopped,
    RunTimeLimitExceeded,
    SimulationError,
    SimulatorUnavailable,
)

__all__ = [
    "AerRun",
    "Refused",
    "RunStopped",
    "RunTimeLimitExceeded",
    "SimulationError",
    "SimulatorUnavailable",
    "Watch",
    "check_runnable",
    "choose_method",
    "run",
    "run_in_pool",
]

STABILIZER = "stabilizer"
STATEVECTOR = "statevector"
MATRIX_PRODUCT_STATE = "matrix_product_state"
METHODS = (STABILIZER, STATEVECTOR, MATRIX_PRODUCT_STATE)

TRANSPILE_CACHE_SIZE = 256
# Below this many qubits a run is single-threaded: starting Aer's OpenMP threads costs 7-15 ms,
# ten times a Bell circuit's whole run, and parallelism comes from concurrent jobs anyway. Aer
# itself only parallelises a statevector from 14 qubits (statevector_parallel_threshold).
_PARALLEL_MIN_QUBITS = 14
_MAX_MESSAGE = 300

# A run whose estimated cost (module docstring) reaches this many nanoseconds runs in the pool.
HEAVY_RUN_NS = 20_000_000
MAX_MPS_QUBITS = 63  # Aer's matrix product state refuses wider circuits
_NS_PER_OPERATION = 15_000
_NS_PER_AMPLITUDE = 1.5
_NS_PER_SAMPLED_SHOT = 1_000
_NS_PER_MPS_SHOT_QUBIT = 3_000
_NS_PER_STABILIZER_SHOT = 2_500
_NS_PER_STABILIZER_SHOT_QUBIT2 = 10
_NS_PER_UNSAMPLED_SHOT = 50_000
_NS_PER_SHOT_OPERATION = 2_000
_NS_PER_SHOT_AMPLITUDE = 10.0


@dataclass(frozen=True)
class AerRun:
    """The outcome of one simulation."""

    counts: dict[str, int]  # qiskit's bit order, exactly as result.get_counts() gives it
    method: str  # "stabilizer" | "statevector" | "matrix_product_state"
    execution_time_ms: float  # wall time of transpile (possibly cached) and run
    num_qubits: int
    shots: int
    measured_all: bool  # the circuit measured nothing, so measure_all() was added


class TranspileCacheInfo(NamedTuple):
    hits: int
    misses: int  # each miss ran a pass manager once
    size: int
    maxsize: int
    pass_managers_built: int


def choose_method(parsed: ParsedCircuit, statevector_max_qubits: int) -> str:
    """The Aer method for `parsed`: stabilizer for a Clifford circuit (any width), statevector
    up to `statevector_max_qubits` qubits, matrix product state beyond."""
    if parsed.is_clifford:
        return STABILIZER
    if parsed.num_qubits <= statevector_max_qubits:
        return STATEVECTOR
    return MATRIX_PRODUCT_STATE


@dataclass(frozen=True)
class Watch:
    """What a heavy run is held to: a wall-clock limit, and a question asked while it runs
    (`stopped`: True ends it, as when its job was cancelled)."""

    seconds: float | None = None
    stopped: Callable[[], bool] | None = None
    progress: Callable[[Any], None] | None = None  # hears what the run reports (`in_parts`)


def run(
    parsed: ParsedCircuit,
    shots: int,
    *,
    statevector_max_qubits: int,
    seed: int | None = None,
    watch: Watch | None = None,
) -> AerRun:
    """Simulate `parsed` for `shots` shots on the method `choose_method` picks.

    A circuit with no measurement is measured in full (`measure_all`) on a copy. `seed` makes the
    counts reproducible. A heavy run (module docstring) runs in a child process, a small one in
    the calling thread, held to `watch`. Raises `SimulationError` (400, SIMULATION_FAILED) when
    Aer refuses the circuit, `RunTimeLimitExceeded` (400) past `watch.seconds`, `RunStopped` when
    `watch.stopped` said so, `SimulatorUnavailable` (503, retried) when the process running it
    dies, and `ValueError` when `shots` < 1 (the API validates shots before this is called).
    """
    if shots < 1:
        raise ValueError("shots must be at least 1")
    method = choose_method(parsed, statevector_max_qubits)
    cost_ns = _cost_ns(parsed, method, shots)
    if cost_ns >= HEAVY_RUN_NS:
        parts = progress_parts(parsed.final_measurements, cost_ns, shots)
        counts, measured_all, elapsed_ms = _simulate_in_pool(
            parsed, method, shots, seed, parts, watch or Watch()
        )
    else:
        counts, measured_all, elapsed_ms = _simulate(parsed, method, shots, seed)
    return AerRun(
        counts=counts,
        method=method,
        execution_time_ms=elapsed_ms,
        num_qubits=parsed.num_qubits,
        shots=shots,
        measured_all=measured_all,
    )


def transpile_cache_info() -> TranspileCacheInfo:
    """Counters of the transpile cache and of the pass managers built so far."""
    with _lock:
        return TranspileCacheInfo(
            hits=_stats["hits"],
            misses=_stats["misses"],
            size=len(_cache),
            maxsize=TRANSPILE_CACHE_SIZE,
            pass_managers_built=_stats["pass_managers_built"],
        )


def clear_transpile_cache() -> None:
    """Empty the transpile cache and zero its hit/miss counters (pass managers are kept)."""
    with _lock:
        _cache.clear()
        _stats["hits"] = 0
        _stats["misses"] = 0


# --- one run ---------------------------------------------------------------------------


def _simulate(
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None, parts: int = 1
) -> tuple[dict[str, int], bool, float]:
    """(counts, measured_all, elapsed ms) of one run in this thread, inline or in a simulator
    process; its shots in `parts` runs, each reported to the caller as done (`in_parts`)."""
    started = time.perf_counter()
    circuit, measured_all = _prepared(parsed, method)
    options: dict[str, Any] = {}
    if parsed.num_qubits < _PARALLEL_MIN_QUBITS:
        options["max_parallel_threads"] = 1

    def run_part(part_shots: int, part_seed: int | None) -> dict[str, int]:
        try:
            result = (
                _simulator(method)
                .run(circuit, shots=part_shots, seed_simulator=part_seed, **options)
                .result()
            )
        except MemoryError:
            raise SimulationError(f"Not enough memory to simulate the circuit ({method})") from None
        except Exception as exc:
            if not _is_refusal(exc):
                raise  # a bug, not the circuit's fault: the API answers 500
            raise _refusal(exc, method) from None
        if not result.success:
            raise SimulationError(_failure_message(result, method))
        return {str(key): int(value) for key, value in result.get_counts().items()}

    counts = in_parts(run_part, shots, seed, parts)
    return counts, measured_all, (time.perf_counter() - started) * 1000.0


# A run whose every shot is a run of its own, estimated at this many nanoseconds or more, runs
# its shots in up to `PROGRESS_PARTS` parts and reports each as done: the job's status shows it.
# Each part costs the run's setup again, so there are only as many as keep that under a tenth.
PROGRESS_AFTER_NS = 1_000_000_000
PROGRESS_PARTS = 20
_PART_SETUP_NS = 2_000_000  # an ideal run's setup (its transpiled circuit is cached)


def progress_parts(
    final_measurements: bool, cost_ns: float, shots: int, setup_ns: float = _PART_SETUP_NS
) -> int:
    """How many parts to run `shots` in so the caller sees progress (1: one run), each part
    costing `setup_ns` more."""
    if final_measurements or cost_ns < PROGRESS_AFTER_NS:
        return 1
    affordable = int(cost_ns * 0.1 / max(setup_ns, 1.0))
    return max(1, min(shots, PROGRESS_PARTS, affordable))


def in_parts(
    run_part: Callable[[int, int | None], dict[str, int]],
    shots: int,
    seed: int | None,
    parts: int,
) -> dict[str, int]:
    """The counts of `shots` shots run as `parts` runs of `run_part(shots, seed)` (seeds
    `seed + i`, so a seeded run stays reproducible), merged; after each part the caller of the
    simulator process hears `{"shots_done", "shots"}` (`processes.report_progress`)."""
    if parts <= 1:
        return run_part(shots, seed)
    counts: dict[str, int] = {}
    done = 0
    for index in range(parts):
        size = shots // parts + (1 if index < shots % parts else 0)
        if size == 0:
            continue
        for key, value in run_part(size, None if seed is None else seed + index).items():
            counts[key] = counts.get(key, 0) + value
        done += size
        processes.report_progress({"shots_done": done, "shots": shots})
    return counts


def _costs_at_least(parsed: ParsedCircuit, method: str, shots: int, budget_ns: float) -> bool:
    """True when the run's estimated cost (module docstring) reaches `budget_ns`."""
    return _cost_ns(parsed, method, shots) >= budget_ns


def _cost_ns(parsed: ParsedCircuit, method: str, shots: int) -> float:
    """The run's estimated cost (module docstring): its shots sampled from one run when the
    circuit measures only at the end, else every shot a run of its own."""
    qubits, operations = parsed.num_qubits, parsed.operations
    if method == STATEVECTOR:
        width = 2.0**qubits
        per_shot = _NS_PER_SAMPLED_SHOT
    elif method == MATRIX_PRODUCT_STATE:
        width = 2.0 ** (1.5 * qubits)
        per_shot = _NS_PER_MPS_SHOT_QUBIT * qubits
    else:
        width = 0.0
        per_shot = _NS_PER_STABILIZER_SHOT + _NS_PER_STABILIZER_SHOT_QUBIT2 * qubits * qubits
    fixed = operations * _NS_PER_OPERATION
    if parsed.final_measurements:
        return fixed + operations * _NS_PER_AMPLITUDE * width + shots * per_shot
    per_operation = _NS_PER_SHOT_OPERATION + _NS_PER_SHOT_AMPLITUDE * width
    return fixed + shots * (_NS_PER_UNSAMPLED_SHOT + operations * per_operation)


def estimated_ns(parsed: ParsedCircuit, shots: int, *, statevector_max_qubits: int) -> float:
    """The estimated cost of an ideal run (module docstring)."""
    return _cost_ns(parsed, choose_method(parsed, statevector_max_qubits), shots)


def check_runnable(
    parsed: ParsedCircuit, shots: int, *, statevector_max_qubits: int, max_run_seconds: float
) -> None:
    """Refuse, before a job is accepted, a run this simulator cannot do or would not finish.

    Raises `SimulationError` for a non-Clifford circuit wider than matrix product state runs
    (63 qubits), and `LimitExceeded` (RUN_TIME_LIMIT_EXCEEDED) when the estimated cost of the
    run (module docstring) exceeds `max_run_seconds`.
    """
    method = choose_method(parsed, statevector_max_qubits)
    if method == MATRIX_PRODUCT_STATE and parsed.num_qubits > MAX_MPS_QUBITS:
        raise SimulationError(
            f"A non-Clifford circuit of {parsed.num_qubits} qubits cannot be simulated: matrix"
            f" product state runs at most {MAX_MPS_QUBITS} qubits"
        )
    if _costs_at_least(parsed, method, shots, max_run_seconds * 1e9):
        raise LimitExceeded(
            f"This circuit and shot count would run for more than {max_run_seconds:g} s on the"
            f" {method} simulator; use fewer shots, operations or qubits",
            error_code="RUN_TIME_LIMIT_EXCEEDED",
        )


# --- the simulator processes ------------------------------------------------------------------


def run_in_pool(
    fn: Callable[..., Any],
    *args: Any,
    what: str,
    seconds: float | None = None,
    stopped: Callable[[], bool] | None = None,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """`fn(*args)` in a simulator process (`shared.suppliers.processes`); this thread waits
    without holding the GIL.

    `fn` is a module-level function returning its result, or a `Refused`, which is raised here
    as a `SimulationError` (400) with its error code. A run past `seconds` is killed
    (`RunTimeLimitExceeded`), one whose `stopped` says True too (`RunStopped`); a process that
    dies raises `SimulatorUnavailable` (503: the queue retries), naming `what` ran.
    """
    return processes.shared().run(
        fn, *args, what=what, seconds=seconds, stopped=stopped, progress=progress
    )


def pool_runs() -> int:
    """How many runs a simulator process has finished (refusals included) in this host."""
    return processes.shared().finished


def _simulate_in_pool(
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None, parts: int, watch: Watch
) -> tuple[dict[str, int], bool, float]:
    """`_simulate` in a simulator process."""
    result: tuple[dict[str, int], bool, float] = run_in_pool(
        _simulate_in_child,
        parsed,
        method,
        shots,
        seed,
        parts,
        what=f"The {method} simulator",
        seconds=watch.seconds,
        stopped=watch.stopped,
        progress=watch.progress,
    )
    return result


def _simulate_in_child(
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None, parts: int
) -> tuple[dict[str, int], bool, float] | Refused:
    """Runs in a simulator process: `_simulate`'s result, or its refusal."""
    try:
        return _simulate(parsed, method, shots, seed, parts)
    except SimulationError as exc:
        return Refused(exc.detail)


# --- caches --------------------------------------------------------------------------------

_lock = threading.Lock()
# (qasm_hash, method) -> (transpiled circuit, measured_all). Circuits in it are shared between
# threads and only read (Aer does not modify the circuits it runs).
_cache: OrderedDict[tuple[str, str], tuple[Any, bool]] = OrderedDict()
_stats = {"hits": 0, "misses": 0, "pass_managers_built": 0}
_simulators: dict[str, Any] = {}
_pass_manager_pools: dict[str, queue.SimpleQueue[Any]] = {m: queue.SimpleQueue() for m in METHODS}


def _simulator(method: str) -> Any:
    """The one AerSimulator of `method` (run options are passed per call, never set on it)."""
    with _lock:
        simulator = _simulators.get(method)
        if simulator is None:
            from qiskit_aer import AerSimulator

            simulator = AerSimulator(method=method)
            # Build the target now, under the lock, rather than lazily in several threads.
            _ = simulator.target
            _simulators[method] = simulator
        return simulator


@contextmanager
def _pass_manager(method: str) -> Iterator[Any]:
    """A pass manager for `method` that no other thread uses until it is given back."""
    pool = _pass_manager_pools[method]
    try:
        manager = pool.get_nowait()
    except queue.Empty:
        from qiskit.transpiler import generate_preset_pass_manager

        # Level 0: translation to the simulator's instructions only; optimisation costs more
        # time than it saves a simulator, and could rewrite Clifford gates into rotations.
        manager = generate_preset_pass_manager(optimization_level=0, backend=_simulator(method))
        with _lock:
            _stats["pass_managers_built"] += 1
    try:
        yield manager
    finally:
        pool.put(manager)


def _prepared(parsed: ParsedCircuit, method: str) -> tuple[Any, bool]:
    """(transpiled circuit, measured_all) for `parsed` on `method`, from the cache if there."""
    key = (parsed.qasm_hash, method)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return cached
        _stats["misses"] += 1
    simulator = _simulator(method)
    limit = simulator.target.num_qubits
    if limit is not None and parsed.num_qubits > limit:
        raise SimulationError(
            f"The circuit has {parsed.num_qubits} qubits; the {method} simulator runs at most"
            f" {limit}"
        )
    circuit = parsed.circuit
    measured_all = not has_measurement(circuit)
    if measured_all:
        circuit = circuit.measure_all(inplace=False)
    try:
        with _pass_manager(method) as manager:
            transpiled = manager.run(circuit)
    except Exception as exc:
        if not _is_refusal(exc):
            raise
        raise _refusal(exc, method) from None
    entry = (transpiled, measured_all)
    # Two threads missing the same key both transpile; the results are equal, the last one stays.
    with _lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > TRANSPILE_CACHE_SIZE:
            _cache.popitem(last=False)
    return entry


def has_measurement(circuit: Any) -> bool:
    """True when `circuit` measures anything, including inside control-flow blocks."""
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name == "measure":
            return True
        if any(has_measurement(block) for block in getattr(operation, "blocks", ())):
            return True
    return False


# --- errors --------------------------------------------------------------------------------


def _clean(message: str) -> str:
    return one_line(message, _MAX_MESSAGE)


def _is_refusal(exc: Exception) -> bool:
    """True for qiskit's and Aer's own errors (AerError, TranspilerError, CircuitError ...):
    the circuit is refused. Any other exception is a bug."""
    from qiskit.exceptions import QiskitError

    return isinstance(exc, QiskitError)


def _refusal(exc: Exception, method: str) -> SimulationError:
    message = getattr(exc, "message", None) or str(exc)
    return SimulationError(f"The {method} simulator cannot run the circuit: {_clean(message)}")


def _failure_message(result: Any, method: str) -> str:
    """The reason Aer gave for a failed result, without its "ERROR: [Experiment 0]" prefixes."""
    statuses = [str(getattr(r, "status", "") or "") for r in getattr(result, "results", ())]
    reason = next((s for s in statuses if s), str(getattr(result, "status", "") or "unknown"))
    reason = reason.removeprefix("ERROR:").strip()
    return f"The {method} simulator cannot run the circuit: {_clean(reason)}"
