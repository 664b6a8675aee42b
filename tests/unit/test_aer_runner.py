"""`shared.suppliers.aer`: the local Aer simulator, its method choice and its transpile cache."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.errors import BadRequest
from shared.suppliers import aer
from shared.suppliers.aer import AerRun, SimulationError, choose_method
from tests.circuits import BELL

REPO_ROOT = Path(__file__).resolve().parents[2]
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


def parsed(qasm: str) -> ParsedCircuit:
    bounds = CircuitLimits(
        max_qasm_bytes=262_144,
        max_qubits=127,
        max_clbits=1024,
        max_operations=1_000_000,
        max_depth=100_000,
    )
    return parse_circuit(qasm, bounds)


def ghz(qubits: int, *, measure: bool = True) -> str:
    lines = [f"qreg q[{qubits}];", f"creg c[{qubits}];", "h q[0];"]
    lines += [f"cx q[{i}],q[{i + 1}];" for i in range(qubits - 1)]
    if measure:
        lines.append("measure q -> c;")
    return V2 + "\n".join(lines) + "\n"


def non_clifford_ghz(qubits: int) -> str:
    """GHZ with t then tdg on qubit 0: the same counts, but statevector, not stabilizer."""
    return ghz(qubits).replace("h q[0];", "h q[0];\nt q[0];\ntdg q[0];")


def rotation_chain(qubits: int) -> str:
    """Non-Clifford (ry), entangled only along a chain: cheap for matrix product state."""
    lines = [f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    lines += [f"ry({0.1 * (i + 1):.3f}) q[{i}];" for i in range(qubits)]
    lines += [f"cx q[{i}],q[{i + 1}];" for i in range(qubits - 1)]
    lines.append("measure q -> c;")
    return V2 + "\n".join(lines) + "\n"


def layered(qubits: int, layers: int) -> str:
    """Non-Clifford and entangled: `layers` of ry on every qubit then a cx chain."""
    lines = [f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for layer in range(layers):
        lines += [f"ry({0.1 * (i + 1 + layer):.3f}) q[{i}];" for i in range(qubits)]
        lines += [f"cx q[{i}],q[{i + 1}];" for i in range(qubits - 1)]
    lines.append("measure q -> c;")
    return V2 + "\n".join(lines) + "\n"


def summary(qubits: int, *, clifford: bool) -> ParsedCircuit:
    return ParsedCircuit(
        circuit=None,
        qasm_hash="0" * 64,
        qasm_version=2,
        num_qubits=qubits,
        num_clbits=qubits,
        operations=1,
        depth=1,
        is_clifford=clifford,
    )


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    aer.clear_transpile_cache()
    yield
    aer.clear_transpile_cache()


# --- method choice ---------------------------------------------------------------------------


def test_clifford_circuit_of_any_width_goes_to_the_stabilizer_method() -> None:
    # given / when / then
    assert choose_method(summary(2, clifford=True), statevector_max_qubits=24) == "stabilizer"
    assert choose_method(summary(100, clifford=True), statevector_max_qubits=24) == "stabilizer"


def test_non_clifford_circuit_within_the_statevector_limit_goes_to_statevector() -> None:
    # given / when / then
    assert choose_method(summary(24, clifford=False), statevector_max_qubits=24) == "statevector"


def test_non_clifford_circuit_over_the_statevector_limit_goes_to_mps() -> None:
    # given / when
    method = choose_method(summary(25, clifford=False), statevector_max_qubits=24)

    # then
    assert method == "matrix_product_state"


# --- running ---------------------------------------------------------------------------------


def test_bell_pair_with_1024_shots_gives_00_and_11_about_half_each() -> None:
    # given
    circuit = parsed(BELL)

    # when
    result = aer.run(circuit, 1024, statevector_max_qubits=24)

    # then
    assert isinstance(result, AerRun)
    assert set(result.counts) == {"00", "11"}
    assert sum(result.counts.values()) == 1024
    assert 400 < result.counts["00"] < 624
    assert result.method == "stabilizer"
    assert (result.num_qubits, result.shots, result.measured_all) == (2, 1024, False)
    assert result.execution_time_ms > 0


def test_ghz_of_12_qubits_gives_only_all_zeros_and_all_ones() -> None:
    # given
    circuit = parsed(ghz(12))

    # when
    result = aer.run(circuit, 1000, statevector_max_qubits=24, seed=7)

    # then
    assert set(result.counts) == {"0" * 12, "1" * 12}


def test_non_clifford_circuit_runs_on_statevector_in_qiskit_bit_order() -> None:
    # given: only qubit 0 flipped; qiskit writes clbit 0 rightmost
    circuit = parsed(V2 + "qreg q[3];\ncreg c[3];\nrx(pi) q[0];\nt q[1];\nmeasure q -> c;\n")

    # when
    result = aer.run(circuit, 100, statevector_max_qubits=24)

    # then
    assert result.method == "statevector"
    assert result.counts == {"001": 100}


def test_60_qubit_clifford_ghz_runs_on_the_stabilizer_method() -> None:
    # given
    circuit = parsed(ghz(60))

    # when
    result = aer.run(circuit, 1024, statevector_max_qubits=24, seed=11)

    # then
    assert result.method == "stabilizer"
    assert set(result.counts) == {"0" * 60, "1" * 60}
    assert result.num_qubits == 60


def test_30_qubit_non_clifford_chain_runs_on_mps_past_the_statevector_limit() -> None:
    # given
    circuit = parsed(rotation_chain(30))

    # when
    result = aer.run(circuit, 256, statevector_max_qubits=24, seed=5)

    # then
    assert result.method == "matrix_product_state"
    assert sum(result.counts.values()) == 256
    assert all(len(key) == 30 for key in result.counts)


def test_circuit_without_measurements_is_measured_in_full_on_a_copy() -> None:
    # given
    circuit = parsed(V2 + "qreg q[2];\nx q[1];\n")
    instructions_before = len(circuit.circuit.data)

    # when
    result = aer.run(circuit, 50, statevector_max_qubits=24)

    # then
    assert result.measured_all is True
    assert result.counts == {"10": 50}
    assert len(circuit.circuit.data) == instructions_before  # the parsed circuit is untouched


def test_same_seed_gives_the_same_counts() -> None:
    # given
    circuit = parsed(V2 + "qreg q[3];\ncreg c[3];\nh q;\nt q[0];\nmeasure q -> c;\n")

    # when
    first = aer.run(circuit, 500, statevector_max_qubits=24, seed=42)
    second = aer.run(circuit, 500, statevector_max_qubits=24, seed=42)

    # then
    assert first.counts == second.counts


# --- refusals --------------------------------------------------------------------------------


def test_instruction_aer_does_not_know_is_a_simulation_error_without_traceback() -> None:
    # given: an opaque gate has no definition to run
    circuit = parsed(V2 + "opaque mystery a;\nqreg q[1];\nmystery q[0];\n")

    # when
    with pytest.raises(SimulationError) as caught:
        aer.run(circuit, 10, statevector_max_qubits=24)

    # then
    assert isinstance(caught.value, BadRequest)
    assert caught.value.status == 400
    assert caught.value.error_code == "SIMULATION_FAILED"
    assert "Traceback" not in caught.value.detail
    assert caught.value.detail.startswith("The statevector simulator cannot run the circuit")


def test_circuit_wider_than_its_method_allows_is_a_simulation_error() -> None:
    # given: 70 non-Clifford qubits; matrix product state runs at most 63
    circuit = parsed(V2 + "qreg q[70];\nrx(0.1) q;\n")

    # when
    with pytest.raises(SimulationError) as caught:
        aer.run(circuit, 10, statevector_max_qubits=24)

    # then
    assert caught.value.detail == (
        "The circuit has 70 qubits; the matrix_product_state simulator runs at most 63"
    )


def test_fewer_than_one_shot_is_a_programming_error() -> None:
    # given
    circuit = parsed(BELL)

    # when / then
    with pytest.raises(ValueError):
        aer.run(circuit, 0, statevector_max_qubits=24)


# --- the transpile cache ---------------------------------------------------------------------


def test_second_run_of_the_same_circuit_does_not_transpile_again() -> None:
    # given
    circuit = parsed(BELL)
    aer.run(circuit, 10, statevector_max_qubits=24)

    # when
    aer.run(parsed(BELL), 10, statevector_max_qubits=24)

    # then: one pass-manager run (the miss), then a hit
    info = aer.transpile_cache_info()
    assert (info.misses, info.hits, info.size) == (1, 1, 1)


def test_the_same_circuit_on_another_method_is_transpiled_for_that_method() -> None:
    # given
    circuit = parsed(rotation_chain(4))
    aer.run(circuit, 10, statevector_max_qubits=24)

    # when: a statevector limit below 4 qubits sends it to matrix product state
    result = aer.run(circuit, 10, statevector_max_qubits=3)

    # then
    assert result.method == "matrix_product_state"
    assert aer.transpile_cache_info().misses == 2


def test_cache_keeps_only_the_most_recent_circuits(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setattr(aer, "TRANSPILE_CACHE_SIZE", 2)
    circuits = [parsed(ghz(n)) for n in (2, 3, 4)]

    # when
    for circuit in circuits:
        aer.run(circuit, 10, statevector_max_qubits=24)
    aer.run(circuits[0], 10, statevector_max_qubits=24)

    # then: the first was evicted by the third, so running it again missed
    info = aer.transpile_cache_info()
    assert (info.size, info.maxsize, info.misses, info.hits) == (2, 2, 4, 0)


def test_pass_managers_are_built_once_per_method_not_per_run() -> None:
    # given
    aer.run(parsed(ghz(3)), 10, statevector_max_qubits=24)
    built = aer.transpile_cache_info().pass_managers_built

    # when
    for qubits in (4, 5, 6):
        aer.run(parsed(ghz(qubits)), 10, statevector_max_qubits=24)

    # then
    assert aer.transpile_cache_info().pass_managers_built == built


def test_sixteen_threads_running_at_once_each_get_their_own_correct_counts() -> None:
    # given: a mix of methods, each circuit run by several threads
    circuits = [parsed(ghz(n)) for n in (2, 3, 5, 8)] + [
        parsed(V2 + f"qreg q[{n}];\ncreg c[{n}];\nx q[0];\nt q[0];\nmeasure q -> c;\n")
        for n in (2, 3, 4, 6)
    ]
    results: dict[int, AerRun] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work(index: int) -> None:
        try:
            barrier.wait()
            results[index] = aer.run(circuits[index % 8], 64, statevector_max_qubits=24)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then
    assert errors == []
    assert len(results) == 16
    for index, result in results.items():
        qubits = circuits[index % 8].num_qubits
        if index % 8 < 4:
            assert set(result.counts) <= {"0" * qubits, "1" * qubits}
            assert result.method == "stabilizer"
        else:
            assert result.counts == {"0" * (qubits - 1) + "1": 64}
            assert result.method == "statevector"
    info = aer.transpile_cache_info()
    assert info.hits + info.misses == 16
    assert info.size == 8


def test_importing_the_aer_module_imports_neither_qiskit_nor_aer() -> None:
    # given
    code = (
        "import shared.suppliers.aer, sys; "
        "assert not {'qiskit', 'qiskit_aer'} & set(sys.modules), 'imported eagerly'"
    )

    # when
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )

    # then
    assert completed.returncode == 0, completed.stderr


# --- heavy runs in the process pool ----------------------------------------------------------
# The pool is made once per test process and reused: its first run pays about 1 s (a process
# started, qiskit imported in it).


def test_bell_pair_runs_inline_not_in_the_pool() -> None:
    # given
    circuit = parsed(BELL)
    before = aer.pool_runs()

    # when
    result = aer.run(circuit, 1024, statevector_max_qubits=24)

    # then
    assert set(result.counts) == {"00", "11"}
    assert aer.pool_runs() == before


def test_heavy_non_clifford_ghz_of_20_qubits_runs_in_the_pool_with_correct_counts() -> None:
    # given
    circuit = parsed(non_clifford_ghz(20))
    before = aer.pool_runs()

    # when
    result = aer.run(circuit, 1000, statevector_max_qubits=24, seed=3)

    # then
    assert aer.pool_runs() == before + 1
    assert result.method == "statevector"
    assert set(result.counts) == {"0" * 20, "1" * 20}
    assert sum(result.counts.values()) == 1000
    assert (result.num_qubits, result.shots, result.measured_all) == (20, 1000, False)
    assert result.execution_time_ms > 0


def test_openqasm2_custom_gate_survives_the_trip_to_the_pool() -> None:
    # given: a user-defined gate that flips its qubit, on 20 qubits
    qasm = V2 + "gate flip a { x a; t a; tdg a; }\nqreg q[20];\ncreg c[20];\nflip q;\n"
    qasm += "measure q -> c;\n"
    before = aer.pool_runs()

    # when
    result = aer.run(parsed(qasm), 100, statevector_max_qubits=24)

    # then
    assert aer.pool_runs() == before + 1
    assert result.counts == {"1" * 20: 100}


def test_openqasm3_circuit_with_a_gate_and_a_loop_runs_in_the_pool() -> None:
    # given: few shots, since a loop makes Aer run the whole circuit once per shot
    qasm = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
        "gate flip a { x a; t a; tdg a; }\n"
        "qubit[20] q;\nbit[20] c;\n"
        "flip q;\n"
        "for int i in [0:2] { x q[19]; }\n"
        "c = measure q;\n"
    )
    before = aer.pool_runs()

    # when
    result = aer.run(parsed(qasm), 3, statevector_max_qubits=24)

    # then: every qubit flipped, and qubit 19 (leftmost) flipped back by three more x
    assert aer.pool_runs() == before + 1
    assert result.counts == {"0" + "1" * 19: 3}


def test_circuit_aer_cannot_sample_runs_in_the_pool_even_when_narrow() -> None:
    # given: a measurement followed by a gate makes every one of the 5000 shots a run of its own
    qasm = V2 + "qreg q[4];\ncreg c[4];\nmeasure q[0] -> c[0];\nx q[0];\nmeasure q -> c;\n"
    before = aer.pool_runs()

    # when
    result = aer.run(parsed(qasm), 5000, statevector_max_qubits=24)

    # then
    assert aer.pool_runs() == before + 1
    assert result.counts == {"0001": 5000}


def test_refusal_in_the_pool_is_the_same_simulation_error() -> None:
    # given: an opaque gate on a circuit heavy enough for the pool
    qasm = V2 + "opaque mystery a;\nqreg q[20];\nh q;\nt q;\nmystery q[0];\n"
    before = aer.pool_runs()

    # when
    with pytest.raises(SimulationError) as caught:
        aer.run(parsed(qasm), 10, statevector_max_qubits=24)

    # then
    assert aer.pool_runs() == before + 1
    assert caught.value.error_code == "SIMULATION_FAILED"
    assert caught.value.detail.startswith("The statevector simulator cannot run the circuit: ")
    assert "Traceback" not in caught.value.detail


def spin_rate(during: Callable[[], object]) -> tuple[float, float]:
    """(loop iterations per second of another thread while `during` runs, seconds it ran)."""
    stop = threading.Event()
    spins = [0]

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1
        spins[0] = count

    spinner = threading.Thread(target=spin)
    started = time.perf_counter()
    spinner.start()
    during()
    stop.set()
    spinner.join()
    elapsed = time.perf_counter() - started
    return spins[0] / elapsed, elapsed


def test_other_threads_keep_running_while_a_heavy_circuit_simulates() -> None:
    # given: about 1 s of statevector work (inline, it leaves other threads ~2% of their rate)
    circuit = parsed(layered(20, 16))
    aer.run(parsed(non_clifford_ghz(20)), 10, statevector_max_qubits=24)  # the pool is up
    before = aer.pool_runs()

    # when
    during_run, seconds = spin_rate(lambda: aer.run(circuit, 100, statevector_max_qubits=24))
    idle, _ = spin_rate(lambda: time.sleep(seconds))

    # then: the spinner shares 2 cores with Aer's threads in the child, but never waits on a GIL
    assert aer.pool_runs() == before + 1
    assert during_run > 0.2 * idle, f"{during_run:.0f}/s while simulating, {idle:.0f}/s idle"


def test_a_killed_pool_process_makes_its_job_retryable_and_the_next_run_gets_a_new_pool() -> None:
    # given: a run of a few seconds in progress in the pool
    circuit = parsed(layered(23, 8))
    outcome: list[BaseException | AerRun] = []

    def work() -> None:
        try:
            outcome.append(aer.run(circuit, 10, statevector_max_qubits=24))
        except BaseException as exc:  # reported below, not lost in the thread
            outcome.append(exc)

    runner = threading.Thread(target=work)
    runner.start()
    deadline = time.monotonic() + 30
    while not multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)

    # when: the pool's processes die as if the OOM killer took them
    for child in multiprocessing.active_children():
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    runner.join(timeout=60)

    # then
    assert len(outcome) == 1
    assert isinstance(outcome[0], aer.SimulatorUnavailable)  # a 503: retried, not failed
    assert "process stopped" in outcome[0].detail
    before = aer.pool_runs()
    again = aer.run(parsed(non_clifford_ghz(20)), 10, statevector_max_qubits=24)
    assert set(again.counts) <= {"0" * 20, "1" * 20}
    assert aer.pool_runs() == before + 1
