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

    operations * (15 us + 1.5 ns * W) + shots * S
    + shots * (50 us + operations * 1.5 ns * W)    only when Aer cannot sample the shots

- W, the work per operation: 2^qubits for statevector; 2^(1.5 * qubits) for matrix product state
  (a bond dimension up to 2^(qubits/2), cubed per two-qubit gate: in practice every matrix
  product state run but the smallest is heavy; a 30-qubit chain of 8 layers ran 12 s); 0 for
  stabilizer. The 15 us per operation is Aer's and the transpiler's Python work per instruction.
- S, the cost of one shot drawn: 1 us for statevector; 3 us * qubits for matrix product state;
  2.5 us + 10 ns * qubits^2 for stabilizer, which measures every shot on its tableau.
- Aer samples all shots from one run only when nothing but measurements follows the first
  measurement and there is no reset or control flow; otherwise every shot is a run of its own.

In the pool (`ProcessPoolExecutor` on "forkserver", or "spawn" where there is no forkserver:
never "fork" in a multi-threaded process), created on the first heavy run with `POOL_PROCESSES`
workers (default: one per CPU), the child receives the `ParsedCircuit` pickled (circuit
included), runs the same transpile-and-run code as an inline run, with its own transpile cache,
and sends back counts and its own timing, so `execution_time_ms` never includes the hop or the
wait for a free worker. `transpile_cache_info` counts this process's cache only. A refusal in the
child comes back as the same `SimulationError`; a child that dies (the OOM killer) answers the
jobs it had with `SimulatorUnavailable`, a 503 the queue retries (the culprit fails on its last
delivery, the others run on the new pool), and the pool is made anew for the next run. The pool
is shut down at exit.

qiskit_aer is imported inside the functions, so importing this module costs nothing; neither
does it start a process before the first heavy run.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from shared.circuits import ParsedCircuit
from shared.errors import BadRequest, LimitExceeded, ServiceUnavailable, one_line

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

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
# Processes in the pool; None: one per CPU. Read when the pool is made.
POOL_PROCESSES: int | None = None
_NS_PER_OPERATION = 15_000
_NS_PER_AMPLITUDE = 1.5
_NS_PER_SAMPLED_SHOT = 1_000
_NS_PER_MPS_SHOT_QUBIT = 3_000
_NS_PER_STABILIZER_SHOT = 2_500
_NS_PER_STABILIZER_SHOT_QUBIT2 = 10
_NS_PER_UNSAMPLED_SHOT = 50_000
# What may follow the first measurement for Aer to still sample every shot from one run.
_SAMPLING_TAIL = frozenset({"measure", "barrier"})


class SimulatorUnavailable(ServiceUnavailable):
    """The simulator's process died under this job (perhaps not its fault): retry it."""

    code = "SIMULATOR_UNAVAILABLE"


class SimulationError(BadRequest):
    """Aer cannot run this circuit, and retrying will not change that: too wide for the method,
    not enough memory, an instruction it does not know. The message is safe to show."""

    code = "SIMULATION_FAILED"


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


def run(
    parsed: ParsedCircuit,
    shots: int,
    *,
    statevector_max_qubits: int,
    seed: int | None = None,
) -> AerRun:
    """Simulate `parsed` for `shots` shots on the method `choose_method` picks.

    A circuit with no measurement is measured in full (`measure_all`) on a copy. `seed` makes the
    counts reproducible. A heavy run (module docstring) runs in a child process, a small one in
    the calling thread. Raises `SimulationError` (400, SIMULATION_FAILED) when Aer refuses the
    circuit, `SimulatorUnavailable` (503, retried) when the process running it dies, and
    `ValueError` when `shots` < 1 (the API validates shots before this is called).
    """
    if shots < 1:
        raise ValueError("shots must be at least 1")
    method = choose_method(parsed, statevector_max_qubits)
    if _is_heavy(parsed, method, shots):
        counts, measured_all, elapsed_ms = _simulate_in_pool(parsed, method, shots, seed)
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


def pool_runs() -> int:
    """How many runs a pool process has finished (refusals included), since this process began."""
    with _pool_lock:
        return _pool_finished


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
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None
) -> tuple[dict[str, int], bool, float]:
    """(counts, measured_all, elapsed ms) of one run in this thread, inline or in a pool child."""
    started = time.perf_counter()
    circuit, measured_all = _prepared(parsed, method)
    options: dict[str, Any] = {"shots": shots}
    if parsed.num_qubits < _PARALLEL_MIN_QUBITS:
        options["max_parallel_threads"] = 1
    if seed is not None:
        options["seed_simulator"] = seed
    try:
        result = _simulator(method).run(circuit, **options).result()
    except MemoryError:
        raise SimulationError(f"Not enough memory to simulate the circuit ({method})") from None
    except Exception as exc:
        if not _is_refusal(exc):
            raise  # a bug, not the circuit's fault: the API answers 500
        raise _refusal(exc, method) from None
    if not result.success:
        raise SimulationError(_failure_message(result, method))
    counts = {str(key): int(value) for key, value in result.get_counts().items()}
    return counts, measured_all, (time.perf_counter() - started) * 1000.0


def _is_heavy(parsed: ParsedCircuit, method: str, shots: int) -> bool:
    """True when the estimated cost of the run (module docstring) reaches `HEAVY_RUN_NS`."""
    return _costs_at_least(parsed, method, shots, HEAVY_RUN_NS)


def _costs_at_least(parsed: ParsedCircuit, method: str, shots: int, budget_ns: float) -> bool:
    """True when the run's estimated cost (module docstring) reaches `budget_ns`."""
    cost, one_run = _cost_ns(parsed, method, shots)
    if cost >= budget_ns:
        return True
    if shots == 1 or cost + shots * (_NS_PER_UNSAMPLED_SHOT + one_run) < budget_ns:
        return False
    # Only now look at the circuit itself (one pass over its top-level instructions).
    return not _samples_shots(parsed.circuit)


def _cost_ns(parsed: ParsedCircuit, method: str, shots: int) -> tuple[float, float]:
    """(the run's estimated cost when its shots are sampled from one run, that one run's)."""
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
    one_run = operations * _NS_PER_AMPLITUDE * width
    return operations * _NS_PER_OPERATION + one_run + shots * per_shot, one_run


def estimated_ns(parsed: ParsedCircuit, shots: int, *, statevector_max_qubits: int) -> float:
    """The estimated cost of an ideal run (module docstring), with shots sampled from one run:
    a lower bound for circuits that measure mid-way (those run every shot)."""
    return _cost_ns(parsed, choose_method(parsed, statevector_max_qubits), shots)[0]


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


# A circuit mapped to a device grows (basis changes, routing swaps): estimate with this many
# operations per operation of the source.
_DEVICE_OPERATIONS_FACTOR = 3


def noisy_cost_ns(parsed: ParsedCircuit, shots: int) -> float:
    """The estimated cost of a run with a device's noise: Aer evolves one density matrix
    (4^qubits amplitudes per operation) or runs every shot as a trajectory of its own (2^qubits
    per operation, per shot), whichever is cheaper."""
    qubits = parsed.num_qubits
    operations = parsed.operations * _DEVICE_OPERATIONS_FACTOR
    density = operations * (_NS_PER_OPERATION + _NS_PER_AMPLITUDE * 4.0**qubits)
    trajectories = shots * (_NS_PER_UNSAMPLED_SHOT + operations * _NS_PER_AMPLITUDE * 2.0**qubits)
    return min(density, trajectories)


def check_noisy_runnable(parsed: ParsedCircuit, shots: int, *, max_run_seconds: float) -> None:
    """Refuse, before a job is accepted, a noisy emulation whose `noisy_cost_ns` exceeds
    `max_run_seconds`: `LimitExceeded` (RUN_TIME_LIMIT_EXCEEDED)."""
    if noisy_cost_ns(parsed, shots) >= max_run_seconds * 1e9:
        raise LimitExceeded(
            f"With the device's noise this circuit and shot count would run for more than"
            f" {max_run_seconds:g} s in emulation; use fewer shots, operations or qubits",
            error_code="RUN_TIME_LIMIT_EXCEEDED",
        )


def _samples_shots(circuit: Any) -> bool:
    """True when Aer can sample every shot from one run: no reset, no control flow, nothing but
    measurements after the first measurement. A circuit without measurements gets measure_all."""
    measured = False
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        if name == "reset" or getattr(operation, "blocks", ()):
            return False
        if name == "measure":
            measured = True
        elif measured and name not in _SAMPLING_TAIL:
            return False
    return True


# --- the process pool ------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_finished = 0
_pool_exit_registered = False


@dataclass(frozen=True)
class Refused:
    """A refusal made in a pool process, sent back as data (the parent raises it anew rather
    than unpickling an exception)."""

    detail: str
    error_code: str = SimulationError.code


def run_in_pool(fn: Callable[..., Any], *args: Any, what: str) -> Any:
    """`fn(*args)` in a pool process; this thread waits without holding the GIL.

    `fn` is a module-level function returning its result, or a `Refused`, which is raised here
    as a `SimulationError` (400) with its error code. A pool process that dies raises
    `SimulatorUnavailable` (503: the queue retries), naming `what` ran.
    """
    global _pool_finished
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    pool = _process_pool()
    try:
        try:
            future = pool.submit(fn, *args)
        except BrokenProcessPool:  # broken by another job before this one was sent: send anew
            _discard_pool(pool)
            pool = _process_pool()
            future = pool.submit(fn, *args)
        outcome = future.result()
    except (BrokenProcessPool, CancelledError):  # cancelled: another thread discarded the pool
        _discard_pool(pool)
        # Transient for this job: the culprit breaks the pool again on every delivery and fails
        # on its last; the jobs that merely shared the pool run on a fresh one next time.
        raise SimulatorUnavailable(
            f"{what}'s process stopped while running circuits (most likely one ran out of"
            " memory); the job will be retried"
        ) from None
    with _pool_lock:
        _pool_finished += 1
    if isinstance(outcome, Refused):
        raise SimulationError(outcome.detail, error_code=outcome.error_code)
    return outcome


def _simulate_in_pool(
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None
) -> tuple[dict[str, int], bool, float]:
    """`_simulate` in a pool process."""
    result: tuple[dict[str, int], bool, float] = run_in_pool(
        _simulate_in_child, parsed, method, shots, seed, what=f"The {method} simulator"
    )
    return result


def _simulate_in_child(
    parsed: ParsedCircuit, method: str, shots: int, seed: int | None
) -> tuple[dict[str, int], bool, float] | Refused:
    """Runs in a pool process: `_simulate`'s result, or its refusal."""
    try:
        return _simulate(parsed, method, shots, seed)
    except SimulationError as exc:
        return Refused(exc.detail)


def _process_pool() -> ProcessPoolExecutor:
    """The pool, made on first use (processes start as jobs arrive, up to POOL_PROCESSES)."""
    global _pool, _pool_exit_registered
    with _pool_lock:
        if _pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            workers = POOL_PROCESSES or os.cpu_count() or 1
            _pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context)
            if not _pool_exit_registered:
                _register_exit(_shutdown_pool)
                _pool_exit_registered = True
        return _pool


def _register_exit(shutdown: Callable[[], None]) -> None:
    """Call `shutdown` at exit, before concurrent.futures joins its pool threads where possible:
    that join waits for every job still queued unless the pool was shut down with
    cancel_futures first. `atexit` alone runs too late for that (after threads are joined)."""
    register = getattr(threading, "_register_atexit", None)  # what concurrent.futures uses
    if register is not None:
        try:
            register(shutdown)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(shutdown)


def _discard_pool(broken: ProcessPoolExecutor) -> None:
    """Forget a broken pool (once, whichever thread sees it first); the next run makes another."""
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def _shutdown_pool() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


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
