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

qiskit_aer is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.circuits import ParsedCircuit
from shared.errors import BadRequest

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
    counts reproducible. Raises `SimulationError` (400, SIMULATION_FAILED) when Aer refuses the
    circuit; `ValueError` when `shots` < 1 (the API validates shots before this is called).
    """
    if shots < 1:
        raise ValueError("shots must be at least 1")
    method = choose_method(parsed, statevector_max_qubits)
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
    elapsed_ms = (time.perf_counter() - started) * 1000.0
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
    measured_all = not _has_measurement(circuit)
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


def _has_measurement(circuit: Any) -> bool:
    """True when `circuit` measures anything, including inside control-flow blocks."""
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name == "measure":
            return True
        if any(_has_measurement(block) for block in getattr(operation, "blocks", ())):
            return True
    return False


# --- errors --------------------------------------------------------------------------------


def _clean(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


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
