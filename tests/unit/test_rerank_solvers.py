"""The solvers of the selection problem: the classical ones against a brute-force search in plain
Python, and the QAOA's circuits against their matrices and its outcome against the exact one."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shared.rerank import classic, qaoa
from shared.rerank.problem import Problem, Scores
from shared.rerank.qaoa import QaoaOptions, QaoaOutcome


def random_problem(seed: int, n: int, k: int, diversity: float) -> Problem:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.0, 1.0, (n, n))
    return Problem.build(Scores(rng.uniform(0.0, 1.0, n), (raw + raw.T) / 2.0), k, diversity)


def by_hand(problem: Problem, subset: tuple[int, ...]) -> float:
    """f(S) from the module docstring of `shared.rerank.problem`, in plain Python."""
    relevance = [float(x) for x in problem.relevance]
    similarity = [[float(x) for x in row] for row in problem.similarity]
    total = sum(relevance[i] for i in subset)
    pairs = sum(similarity[i][j] for i in subset for j in subset if i < j)
    return total - problem.diversity * pairs


def by_hand_partial(problem: Problem, subset: list[int]) -> float:
    """The QUBO r.x - w * sum_{i<j} s_ij x_i x_j for a subset of any size."""
    pairs = sum(float(problem.similarity[i, j]) for i, j in itertools.combinations(subset, 2))
    return sum(float(problem.relevance[i]) for i in subset) - problem.pair_weight * pairs


def brute_force(problem: Problem) -> float:
    return max(by_hand(problem, s) for s in itertools.combinations(range(problem.n), problem.k))


# Three groups of three near-duplicates, every candidate highly relevant, group 0 the most.
PLANTED_GROUPS = ((0, 1, 2), (3, 4, 5), (6, 7, 8))
PLANTED_RELEVANCE = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91])


def planted(diversity: float) -> Problem:
    group = [g for g, members in enumerate(PLANTED_GROUPS) for _ in members]
    similarity = np.array(
        [[0.95 if group[i] == group[j] else 0.05 for j in range(9)] for i in range(9)]
    )
    return Problem.build(Scores(PLANTED_RELEVANCE, similarity), 3, diversity)


def groups_of(subset: tuple[int, ...] | list[int]) -> list[int]:
    return sorted(g for i in subset for g, members in enumerate(PLANTED_GROUPS) if i in members)


# ---------------------------------------------------------------- exact


EXACT_CASES = [(6, 1), (7, 2), (8, 3), (9, 4), (10, 5), (11, 3), (12, 2), (13, 4), (14, 5), (14, 1)]


@pytest.mark.parametrize(("n", "k"), EXACT_CASES)
def test_exact_finds_the_optimum_of_a_brute_force_search(n: int, k: int) -> None:
    # given a random problem
    problem = random_problem(n * 31 + k, n, k, diversity=(n % 4) / 3)
    optimum = brute_force(problem)
    # when
    solution = classic.exact(problem)
    # then the same objective, reached by the subset it returns
    assert solution.method == "exact"
    assert solution.evaluated == math.comb(n, k)
    assert solution.objective == pytest.approx(optimum, abs=1e-9)
    assert len(solution.subset) == k == len(set(solution.subset))
    assert list(solution.subset) == sorted(solution.subset)
    assert by_hand(problem, solution.subset) == pytest.approx(optimum, abs=1e-9)


def test_exact_refuses_more_subsets_than_its_limit() -> None:
    # given a problem with C(10, 4) = 210 subsets
    problem = random_problem(1, 10, 4, 0.5)
    # when / then
    with pytest.raises(ValueError, match="210 subsets"):
        classic.exact(problem, max_subsets=209)
    assert classic.exact(problem, max_subsets=210).evaluated == 210
    assert not classic.exact_is_computable(problem, max_subsets=209)
    assert classic.exact_is_computable(problem, max_subsets=210)


def test_exact_is_computable_up_to_the_default_limit() -> None:
    # given C(30, 5) = 142,506 (under 200,000) and C(40, 5) = 658,008 (over)
    assert classic.exact_is_computable(random_problem(0, 30, 5, 0.5))
    assert not classic.exact_is_computable(random_problem(0, 40, 5, 0.5))
    assert classic.EXACT_MAX_SUBSETS == 200_000


# ---------------------------------------------------------------- heuristic and solve


@pytest.mark.parametrize("seed", range(10))
def test_heuristic_reaches_the_exact_optimum_at_thirty_candidates(seed: int) -> None:
    # given a random problem of 30 candidates, k = 5
    problem = random_problem(seed, 30, 5, diversity=(0.25, 0.5, 0.75, 1.0)[seed % 4])
    optimum = classic.exact(problem).objective
    # when
    solution = classic.heuristic(problem)
    # then
    assert optimum > 0
    assert solution.objective / optimum >= 0.999
    assert solution.method == "greedy+local_search"
    assert len(set(solution.subset)) == 5
    assert list(solution.subset) == sorted(solution.subset)
    assert solution.objective == pytest.approx(problem.value(solution.subset), abs=1e-12)


def test_heuristic_is_deterministic() -> None:
    # given
    problem = random_problem(42, 40, 6, 0.7)
    # when
    first, second = classic.heuristic(problem), classic.heuristic(problem)
    # then
    assert first.subset == second.subset
    assert first.objective == second.objective


def test_heuristic_with_k_equal_to_n_takes_every_candidate() -> None:
    # given
    problem = random_problem(3, 5, 5, 0.5)
    # when / then
    assert classic.heuristic(problem).subset == (0, 1, 2, 3, 4)


def test_local_search_ends_where_no_single_swap_gains() -> None:
    # given a start from a random subset
    problem = random_problem(9, 15, 4, 0.8)
    # when
    subset, tried = classic.local_search(problem, [0, 1, 2, 3])
    # then
    assert tried > 0
    value = problem.value(subset)
    for out in subset:
        for into in set(range(15)) - set(subset):
            swapped = [into if i == out else i for i in subset]
            assert problem.value(swapped) <= value + 1e-9


def test_solve_uses_exact_when_computable() -> None:
    # given C(12, 4) = 495 subsets
    problem = random_problem(5, 12, 4, 0.5)
    # when
    solution = classic.solve(problem)
    # then
    assert solution.method == "exact"
    assert solution.objective == pytest.approx(brute_force(problem), abs=1e-9)


def test_solve_uses_the_heuristic_when_exact_is_too_costly() -> None:
    # given C(60, 5), about 5.5 million subsets
    problem = random_problem(5, 60, 5, 0.5)
    # when
    solution = classic.solve(problem)
    # then
    assert solution.method == "greedy+local_search"
    assert solution == classic.heuristic(problem)


# ---------------------------------------------------------------- greedy


@pytest.mark.parametrize(("seed", "k", "count"), [(0, 3, 8), (1, 1, 5), (2, 4, 12), (3, 5, 5)])
def test_greedy_with_a_count_goes_on_past_k_in_the_same_order(
    seed: int, k: int, count: int
) -> None:
    # given
    problem = random_problem(seed, 12, k, 0.6)
    # when
    shortlist = classic.greedy(problem, count=count)
    # then
    assert len(shortlist) == count == len(set(shortlist))
    assert all(0 <= i < 12 for i in shortlist)
    assert shortlist[:k] == classic.greedy(problem)


def test_greedy_with_a_count_beyond_n_takes_every_candidate() -> None:
    # given
    problem = random_problem(4, 6, 2, 0.5)
    # when / then
    assert sorted(classic.greedy(problem, count=10)) == list(range(6))


def test_greedy_adds_the_candidate_with_the_largest_gain_each_time() -> None:
    # given
    problem = random_problem(8, 10, 4, 0.9)
    # when
    chosen = classic.greedy(problem)
    # then every pick was the best addition to those before it
    for step in range(4):
        before = chosen[:step]
        gains = {
            i: by_hand_partial(problem, [*before, i]) - by_hand_partial(problem, before)
            for i in range(10)
            if i not in before
        }
        assert gains[chosen[step]] == pytest.approx(max(gains.values()), abs=1e-12)


# ---------------------------------------------------------------- the planted instance


def classical_answers(problem: Problem) -> dict[str, tuple[int, ...]]:
    return {
        "exact": classic.exact(problem).subset,
        "heuristic": classic.heuristic(problem).subset,
        "solve": classic.solve(problem).subset,
        "greedy": tuple(classic.greedy(problem)),
    }


def test_planted_with_full_diversity_every_classical_solver_picks_one_per_group() -> None:
    # given / when
    answers = classical_answers(planted(diversity=1.0))
    # then
    for name, subset in answers.items():
        assert groups_of(subset) == [0, 1, 2], name
    assert answers["exact"] == (0, 3, 6)


def test_planted_with_no_diversity_every_classical_solver_picks_the_three_most_relevant() -> None:
    # given / when
    answers = classical_answers(planted(diversity=0.0))
    # then all three from the most relevant group
    for name, subset in answers.items():
        assert sorted(subset) == [0, 1, 2], name


@pytest.mark.parametrize(("diversity", "expected"), [(1.0, "one per group"), (0.0, "top three")])
def test_planted_qaoa_picks_like_the_classical_solvers(diversity: float, expected: str) -> None:
    # given
    problem = planted(diversity)
    # when
    outcome = qaoa.solve(problem, QaoaOptions(max_iters=20, seed=3))
    # then
    if expected == "one per group":
        assert groups_of(outcome.subset) == [0, 1, 2]
    else:
        assert sorted(outcome.subset) == [0, 1, 2]


# ---------------------------------------------------------------- QAOA circuits


def test_feasible_strings_are_every_string_with_k_ones_in_aer_bit_order() -> None:
    # given / when
    indices, subsets = qaoa.feasible_strings(5, 2)
    # then
    assert subsets.shape == (10, 2)
    for index, subset in zip(indices, subsets, strict=True):
        assert {i for i in range(5) if int(index) >> i & 1} == {int(i) for i in subset}
    assert sorted(int(i) for i in indices) == [x for x in range(32) if bin(x).count("1") == 2]


@pytest.mark.parametrize(("n", "k"), [(2, 1), (3, 1), (4, 2), (5, 1), (5, 4), (6, 3), (7, 2)])
def test_dicke_circuit_prepares_the_dicke_state(n: int, k: int) -> None:
    from qiskit.quantum_info import Statevector

    # given the state the circuit should prepare
    expected = qaoa.dicke_state(n, k)
    assert np.count_nonzero(expected) == math.comb(n, k)
    assert np.linalg.norm(expected) == pytest.approx(1.0)
    # when
    prepared = Statevector(qaoa.dicke_circuit(n, k)).data
    # then exactly that state, global phase included
    assert np.allclose(prepared, expected, atol=1e-9)


def qubo_values(problem: Problem) -> np.ndarray:
    """f(x) = r.x - w * sum_{i<j} s_ij x_i x_j on every basis state (qubit i is bit i)."""
    found = []
    for index in range(2**problem.n):
        chosen = [i for i in range(problem.n) if index >> i & 1]
        found.append(by_hand_partial(problem, chosen))
    return np.asarray(found)


def layer_operator(problem: Problem, scale: float, gamma: float, beta: float) -> np.ndarray:
    from qiskit.quantum_info import Operator

    circuit, parameters = qaoa._layers_circuit(problem, scale, 1)
    bound = circuit.assign_parameters(dict(zip(parameters, [gamma, beta], strict=True)))
    matrix: np.ndarray = Operator(bound).data
    return matrix


@pytest.mark.parametrize(("k", "diversity"), [(2, 0.5), (3, 1.0), (1, 0.8), (3, 0.0)])
def test_the_cost_layer_multiplies_each_basis_state_by_the_phase_of_its_objective(
    k: int, diversity: float
) -> None:
    # given a 6-candidate problem and the cost layer alone (beta = 0)
    problem = random_problem(17 + k, 6, k, diversity)
    gamma, scale = 0.7, 1.3
    # when
    matrix = layer_operator(problem, scale, gamma, 0.0)
    # then it is diagonal, with exp(i * gamma * scale * f(x)) up to one global phase
    diagonal = np.diag(matrix)
    assert np.allclose(matrix, np.diag(diagonal), atol=1e-9)
    expected = np.exp(1j * gamma * scale * qubo_values(problem))
    ratio = diagonal / expected
    assert np.allclose(np.abs(ratio), 1.0, atol=1e-9)
    assert np.allclose(ratio, ratio[0], atol=1e-9)


def test_the_qubo_on_strings_with_k_ones_is_the_objective() -> None:
    # given
    problem = random_problem(2, 6, 3, 0.6)
    values = qubo_values(problem)
    indices, subsets = qaoa.feasible_strings(6, 3)
    # when / then: the formula the cost layer encodes is the problem's objective
    assert values[indices] == pytest.approx(problem.values(subsets), abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5, 6])
def test_the_xy_mixer_keeps_the_number_of_ones(n: int) -> None:
    # given the mixer alone (gamma = 0)
    problem = random_problem(n, n, 1, 0.5)
    # when
    matrix = layer_operator(problem, 1.0, 0.0, 0.6)
    # then no amplitude moves between strings of different Hamming weight
    weights = np.array([bin(x).count("1") for x in range(2**n)])
    across = weights[:, None] != weights[None, :]
    assert np.allclose(matrix[across], 0.0, atol=1e-9)
    assert np.allclose(matrix @ matrix.conj().T, np.eye(2**n), atol=1e-9)
    # and it does mix: the state moves off the identity within each weight
    assert not np.allclose(matrix, np.eye(2**n), atol=1e-3)


def test_ring_pairs_join_neighbours_and_close_the_ring() -> None:
    # given / when / then
    assert qaoa._ring_pairs(2) == [(0, 1)]
    assert qaoa._ring_pairs(5) == [(0, 1), (2, 3), (1, 2), (3, 4), (4, 0)]
    assert sorted(tuple(sorted(p)) for p in qaoa._ring_pairs(6)) == sorted(
        [(i, (i + 1) % 6) if i < 5 else (0, 5) for i in range(6)]
    )


# ---------------------------------------------------------------- QAOA solve


@pytest.fixture(scope="module")
def ten_candidates() -> Problem:
    return random_problem(2024, 10, 3, 0.6)


@pytest.fixture(scope="module")
def outcome(ten_candidates: Problem) -> QaoaOutcome:
    return qaoa.solve(ten_candidates, QaoaOptions(max_iters=20, seed=7))


def test_qaoa_returns_k_distinct_candidates_in_range(
    ten_candidates: Problem, outcome: QaoaOutcome
) -> None:
    assert len(outcome.subset) == 3 == len(set(outcome.subset))
    assert all(0 <= i < 10 for i in outcome.subset)
    assert outcome.qubits == 10
    assert outcome.layers == 1
    assert outcome.shots == 1024


def test_qaoa_objective_is_the_value_of_its_subset_and_at_most_the_optimum(
    ten_candidates: Problem, outcome: QaoaOutcome
) -> None:
    assert outcome.objective == pytest.approx(ten_candidates.value(outcome.subset), abs=1e-12)
    assert outcome.objective <= outcome.optimum + 1e-9
    assert outcome.optimum == pytest.approx(classic.exact(ten_candidates).objective, abs=1e-9)


def test_qaoa_keeps_to_its_budget_and_to_strings_with_k_ones(outcome: QaoaOutcome) -> None:
    assert 1 <= outcome.iterations <= 20
    assert outcome.feasible_fraction == 1.0
    assert 0.0 <= outcome.optimum_probability <= 1.0
    assert 0.0 < outcome.uniform_probability <= 1.0
    assert outcome.seconds > 0


def test_qaoa_expectation_is_never_worse_than_the_dicke_state(outcome: QaoaOutcome) -> None:
    assert outcome.expectation >= outcome.uniform_expectation - 1e-9
    assert outcome.expectation <= outcome.optimum + 1e-9


def test_qaoa_uniform_expectation_is_the_mean_objective_over_feasible_subsets(
    ten_candidates: Problem, outcome: QaoaOutcome
) -> None:
    _, subsets = qaoa.feasible_strings(10, 3)
    mean = float(ten_candidates.values(subsets).mean())
    assert outcome.uniform_expectation == pytest.approx(mean, abs=1e-9)


def test_qaoa_with_the_same_seed_returns_the_same_subset(
    ten_candidates: Problem, outcome: QaoaOutcome
) -> None:
    # when
    again = qaoa.solve(ten_candidates, QaoaOptions(max_iters=20, seed=7))
    # then
    assert again.subset == outcome.subset
    assert again.angles == outcome.angles


@pytest.mark.parametrize("max_iters", [10, 11, 12, 13])
def test_qaoa_spends_at_most_max_iters_evaluations(max_iters: int) -> None:
    # given the smallest budgets the API accepts (10) and those just above
    problem = random_problem(6, 6, 2, 0.5)
    # when
    found = qaoa.solve(problem, QaoaOptions(max_iters=max_iters, shots=64, seed=1))
    # then
    assert found.iterations <= max_iters


def test_qaoa_with_two_layers_keeps_to_its_budget() -> None:
    # given
    problem = random_problem(7, 6, 3, 0.5)
    # when
    found = qaoa.solve(problem, QaoaOptions(layers=2, max_iters=20, shots=64, seed=1))
    # then
    assert found.iterations <= 20
    assert len(found.angles["gamma"]) == len(found.angles["beta"]) == 2
    assert found.expectation >= found.uniform_expectation - 1e-9
    assert found.feasible_fraction == 1.0


def test_qaoa_on_the_cpu_is_no_fallback() -> None:
    # given / when
    found = qaoa.solve(random_problem(8, 5, 2, 0.5), QaoaOptions(max_iters=10, shots=32, seed=0))
    # then
    assert (found.device, found.fallback) == ("CPU", False)


def test_qaoa_on_the_gpu_runs_there_or_says_it_fell_back() -> None:
    from qiskit_aer import AerSimulator

    # given what Aer has here
    has_gpu = "GPU" in AerSimulator().available_devices()
    # when
    found = qaoa.solve(
        random_problem(8, 5, 2, 0.5), QaoaOptions(device="GPU", max_iters=10, shots=32, seed=0)
    )
    # then
    assert (found.device, found.fallback) == (("GPU", False) if has_gpu else ("CPU", True))
    assert qaoa._device("GPU") == (found.device, found.fallback)
    assert qaoa._device("CPU") == ("CPU", False)


def test_qaoa_refuses_a_problem_wider_than_its_qubits() -> None:
    # given
    problem = random_problem(0, qaoa.MAX_QUBITS + 1, 2, 0.5)
    # when / then
    with pytest.raises(ValueError, match="at most"):
        qaoa.solve(problem, QaoaOptions())


def test_circuit_size_counts_a_positive_depth_and_two_qubit_gates() -> None:
    # given
    problem = random_problem(3, 6, 2, 0.5)
    ansatz, _ = qaoa._layers_circuit(problem, 1.0, 1)
    # when
    depth, two_qubit = qaoa.circuit_size(6, 2, ansatz)
    # then
    assert depth > 0
    assert two_qubit > 0
    assert qaoa.circuit_size(6, 2, ansatz) == (depth, two_qubit)
