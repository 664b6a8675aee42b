"""QAOA for the selection problem, on Aer: Dicke-state start, XY mixer, exactly k chosen.

One qubit per shortlisted candidate (qubit i = candidate i; |1> = chosen). The circuit:

1. The Dicke state |D(n, k)>, the equal superposition of every n-bit string with k ones, made
   with Bartschi and Eidenbenz's split-and-cyclic-shift construction (n*k gates).
2. `layers` times: the cost layer exp(i * gamma * f(x) / sigma), RZ and RZZ gates from the QUBO
   (f as in `problem`, sigma the spread of f over the feasible subsets, so one range of gamma
   suits every instance), then the XY ring mixer exp(-i * beta * (XX + YY) / 2) on neighbouring
   qubits (RXX and RYY, even pairs then odd pairs, then the pair closing the ring). Both keep the
   number of ones, so every sampled string chooses exactly k candidates.
3. Measure all qubits.

The optimiser: the Dicke state itself (all angles 0) and the angles of one layer on a 3 x 3
grid (one Aer call for the ten), then COBYLA over all 2 * layers angles from a ramp through the
best of them, maximising the expectation of f; the best angles seen win, so the answer is never
sampled from a state worse, on average, than the Dicke state. Every circuit evaluation counts
against `max_iters`. The expectation is computed exactly from Aer's probabilities over the
C(n, k) feasible strings (an ideal simulator, no shot noise).
Then the best angles are sampled `shots` times and the sampled string with the highest f wins.

What is simulated: Aer starts each evaluation from the Dicke state, computed once in numpy, with
`set_statevector`, and applies the layers; the reported depth and gate counts are those of the
whole circuit (preparation included) transpiled to CX and single-qubit rotations, what a device
would run.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.rerank.problem import Problem

GPU = "GPU"
CPU = "CPU"
# The first search: every layer at the same angles (gamma in units of 1 / sigma, beta in radians).
GAMMAS = (0.2, 0.5, 1.0)
BETAS = (0.15, 0.4, 0.8)
MAX_QUBITS = 24


@dataclass(frozen=True)
class QaoaOptions:
    layers: int = 1
    shots: int = 1024
    max_iters: int = 50
    device: str = CPU  # CPU or GPU (GPU falls back to CPU where Aer has none)
    seed: int | None = None


@dataclass(frozen=True)
class QaoaOutcome:
    subset: tuple[int, ...]  # indices into the problem's candidates
    objective: float  # f of the chosen subset
    expectation: float  # <f> at the best angles
    uniform_expectation: float  # <f> in the Dicke state (every layer at angle 0)
    optimum: float  # the best f over every feasible string (known from the enumeration)
    optimum_probability: float  # the probability of measuring an optimal string
    uniform_probability: float  # the same in the Dicke state (no layers), for comparison
    feasible_fraction: float  # of the shots, those with exactly k ones (1 up to rounding)
    qubits: int
    depth: int
    two_qubit_gates: int
    layers: int
    shots: int
    iterations: int  # circuit evaluations by the optimiser (grid included)
    device: str  # the device that ran: CPU or GPU
    fallback: bool  # GPU was asked for and Aer has none here
    angles: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def feasible_strings(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every n-bit string with k ones: (their indices in Aer's probability vector, where qubit i
    is bit i, and the (m, k) array of their chosen qubits)."""
    subsets = np.asarray(list(itertools.combinations(range(n), k)), dtype=np.int64)
    indices = (np.int64(1) << subsets).sum(axis=1)
    return indices, subsets


def dicke_state(n: int, k: int) -> np.ndarray:
    """The statevector of |D(n, k)>."""
    indices, _ = feasible_strings(n, k)
    state = np.zeros(2**n, dtype=np.complex128)
    state[indices] = 1.0 / math.sqrt(len(indices))
    return state


def dicke_circuit(n: int, k: int) -> Any:
    """A circuit preparing |D(n, k)> from |0...0> (Bartschi and Eidenbenz, 2019)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import RYGate

    circuit = QuantumCircuit(n, name=f"dicke_{n}_{k}")
    for qubit in range(n - k, n):
        circuit.x(qubit)

    def split_and_cyclic_shift(m: int, ones: int) -> None:
        # acts on qubits m-ones-1 .. m-1 (the last `ones + 1` of the first m)
        circuit.cx(m - 2, m - 1)
        circuit.cry(2 * math.acos(math.sqrt(1 / m)), m - 1, m - 2)
        circuit.cx(m - 2, m - 1)
        for j in range(2, ones + 1):
            circuit.cx(m - 1 - j, m - 1)
            angle = 2 * math.acos(math.sqrt(j / m))
            circuit.append(RYGate(angle).control(2, annotated=False), [m - 1, m - j, m - 1 - j])
            circuit.cx(m - 1 - j, m - 1)

    for m in range(n, k, -1):
        split_and_cyclic_shift(m, k)
    for m in range(k, 1, -1):
        split_and_cyclic_shift(m, m - 1)
    return circuit


def _ring_pairs(n: int) -> list[tuple[int, int]]:
    """Neighbouring qubits of the ring: even pairs, odd pairs, then the pair closing it."""
    pairs = [(i, i + 1) for i in range(0, n - 1, 2)] + [(i, i + 1) for i in range(1, n - 1, 2)]
    if n > 2:
        pairs.append((n - 1, 0))
    return pairs


def _layers_circuit(problem: Problem, scale: float, layers: int) -> tuple[Any, list[Any]]:
    """The cost and mixer layers, with parameters gamma_l and beta_l.

    f(x) = sum r_i x_i - w sum_{i<j} s_ij x_i x_j with x_i = (1 - Z_i) / 2 is, up to a
    constant, -sum_i c_i Z_i - (w / 4) sum_{i<j} s_ij Z_i Z_j with c_i = r_i / 2 - (w / 4)
    sum_j s_ij. So exp(i gamma f / sigma) = prod RZ(2 gamma c_i / sigma) prod RZZ(gamma w s_ij /
    (2 sigma)), RZ(t) being exp(-i t Z / 2) and RZZ(t) exp(-i t ZZ / 2).
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    n, w = problem.n, problem.pair_weight
    gammas, betas = ParameterVector("gamma", layers), ParameterVector("beta", layers)
    linear = problem.relevance / 2 - (w / 4) * problem.similarity.sum(axis=1)
    circuit = QuantumCircuit(n)
    for layer in range(layers):
        gamma, beta = gammas[layer], betas[layer]
        for i in range(n):
            if linear[i]:
                circuit.rz(2 * scale * float(linear[i]) * gamma, i)
        if w:
            for i in range(n):
                for j in range(i + 1, n):
                    if problem.similarity[i, j]:
                        circuit.rzz(scale * w * float(problem.similarity[i, j]) / 2 * gamma, i, j)
        for i, j in _ring_pairs(n):
            circuit.rxx(beta, i, j)
            circuit.ryy(beta, i, j)
    return circuit, [*gammas, *betas]


def _device(requested: str) -> tuple[str, bool]:
    """(the device that will run, whether that is a fallback from the one requested)."""
    from qiskit_aer import AerSimulator

    if requested == GPU:
        if GPU in AerSimulator().available_devices():
            return GPU, False
        return CPU, True
    return CPU, False


def solve(problem: Problem, options: QaoaOptions) -> QaoaOutcome:
    """Run QAOA on `problem` (at most `MAX_QUBITS` candidates) and return the best sampled
    subset. Raises ValueError for a problem too wide."""
    from qiskit_aer import AerSimulator
    from scipy.optimize import minimize

    started = time.perf_counter()
    n, k, layers = problem.n, problem.k, options.layers
    if n > MAX_QUBITS:
        raise ValueError(f"QAOA runs at most {MAX_QUBITS} candidates, not {n}")
    device, fallback = _device(options.device)
    indices, subsets = feasible_strings(n, k)
    values = problem.values(subsets)
    optimum = float(values.max())
    spread = float(values.std()) or 1.0
    ansatz, parameters = _layers_circuit(problem, 1.0 / spread, layers)
    # Every instruction is native to Aer, so nothing is transpiled; one thread per circuit
    # (Aer's threads cost more than they give at this width), circuits of a batch in parallel.
    simulator = AerSimulator(method="statevector", device=device)
    evaluated = ansatz.copy_empty_like()  # the layers on |D(n, k)>, set as Aer's initial state
    evaluated.set_statevector(dicke_state(n, k))
    evaluated.compose(ansatz, inplace=True)
    evaluated.save_probabilities()
    run_options: dict[str, Any] = {"shots": 1, "max_parallel_threads": 1}
    iterations = 0

    def expectations(points: list[np.ndarray]) -> list[float]:
        nonlocal iterations
        iterations += len(points)
        binds = [{p: [float(x[i]) for x in points] for i, p in enumerate(parameters)}]
        batch = dict(run_options)
        if device == CPU and len(points) > 1:
            cores = min(os.cpu_count() or 1, len(points))
            batch |= {"max_parallel_experiments": cores, "max_parallel_threads": cores}
        result = simulator.run(evaluated, parameter_binds=binds, **batch).result()
        found = []
        for position in range(len(points)):
            probabilities = np.asarray(result.data(position)["probabilities"])
            found.append(float(probabilities[indices] @ values))
        return found

    budget = options.max_iters
    # The first point is the Dicke state itself (no layers): the baseline QAOA must beat.
    grid = [np.zeros(2 * layers)] + [
        np.array([gamma] * layers + [beta] * layers) for gamma in GAMMAS for beta in BETAS
    ][: max(1, budget - 1)]
    scores = expectations(grid)
    uniform_expectation = scores[0]
    best = int(np.argmax(scores))
    best_point, best_value = grid[best], scores[best]
    remaining = budget - iterations
    if remaining >= 2 * layers + 2:  # COBYLA's first simplex takes 2 * layers + 1 points

        def negative(x: np.ndarray) -> float:
            nonlocal best_point, best_value
            value = expectations([x])[0]
            if value > best_value:
                best_point, best_value = x.copy(), value
            return -value

        minimize(
            negative,
            _ramp(grid[best], layers),
            method="COBYLA",
            # tol 0.01 (not 1e-4) saved a fifth of the evaluations over the bench's 20
            # instances and found the same subsets; 0.03 lost optima
            options={"maxiter": remaining, "rhobeg": 0.2, "tol": 0.01},
        )

    sampler = evaluated.copy()  # the probabilities are saved before the measurement
    sampler.measure_all()
    bind = [{p: [float(best_point[i])] for i, p in enumerate(parameters)}]
    sample_options = dict(run_options, shots=options.shots)
    if options.seed is not None:
        sample_options["seed_simulator"] = options.seed
    result = simulator.run(sampler, parameter_binds=bind, **sample_options).result()
    counts: dict[str, int] = result.get_counts()
    probabilities = np.asarray(result.data(0)["probabilities"])
    chosen, objective, feasible = _best_sample(problem, counts)
    optimal = indices[values >= optimum - 1e-9]
    depth, two_qubit = circuit_size(n, k, ansatz)
    return QaoaOutcome(
        subset=chosen,
        objective=objective,
        expectation=best_value,
        uniform_expectation=uniform_expectation,
        optimum=optimum,
        optimum_probability=float(probabilities[optimal].sum()),
        uniform_probability=len(optimal) / len(indices),
        feasible_fraction=feasible / options.shots,
        qubits=n,
        depth=depth,
        two_qubit_gates=two_qubit,
        layers=layers,
        shots=options.shots,
        iterations=iterations,
        device=device,
        fallback=fallback,
        angles={
            "gamma": [round(float(x), 6) for x in best_point[:layers]],
            "beta": [round(float(x), 6) for x in best_point[layers:]],
        },
        seconds=time.perf_counter() - started,
    )


def _ramp(point: np.ndarray, layers: int) -> np.ndarray:
    """A linear ramp over the layers through one layer's best angles: gamma rising, beta
    falling (the annealing-like schedule that warm-starts deeper QAOA)."""
    gamma, beta = float(point[0]), float(point[layers])
    steps = (np.arange(layers) + 0.5) / layers
    return np.concatenate([gamma * 2 * steps, beta * 2 * steps[::-1]])


def _best_sample(problem: Problem, counts: dict[str, int]) -> tuple[tuple[int, ...], float, int]:
    """(the sampled subset of size k with the highest f, that f, the shots with k ones)."""
    best: tuple[int, ...] = ()
    best_value = -math.inf
    feasible = 0
    for bits, count in counts.items():
        chosen = tuple(i for i, bit in enumerate(reversed(bits.replace(" ", ""))) if bit == "1")
        if len(chosen) != problem.k:
            continue
        feasible += count
        value = problem.value(chosen)
        if value > best_value:
            best, best_value = chosen, value
    if not best:
        raise RuntimeError("no sampled string chose exactly k candidates")
    return best, float(best_value), feasible


def circuit_size(n: int, k: int, ansatz: Any) -> tuple[int, int]:
    """(depth, two-qubit gates) of the whole circuit, Dicke preparation included, in CX and
    single-qubit rotations, as a device would run it."""
    from qiskit import transpile

    whole = dicke_circuit(n, k)
    whole.compose(ansatz.assign_parameters([0.5] * ansatz.num_parameters), inplace=True)
    whole.measure_all()
    key = (n, k, tuple((item.operation.name, item.qubits) for item in whole.data))
    found = _SIZES.get(key)
    if found is None:
        mapped = transpile(
            whole, basis_gates=["cx", "rz", "sx", "x"], optimization_level=1, seed_transpiler=0
        )
        two_qubit = sum(1 for item in mapped.data if item.operation.num_qubits == 2)
        found = _SIZES[key] = (int(mapped.depth()), two_qubit)
    return found


_SIZES: dict[tuple[Any, ...], tuple[int, int]] = {}
