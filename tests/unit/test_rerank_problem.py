"""The selection objective, each chosen item's score and the ranking, checked against the formula
in `shared.rerank.problem`'s docstring evaluated by hand in plain Python."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from shared.rerank.problem import Problem, Scores


def random_scores(seed: int, n: int) -> Scores:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.0, 1.0, (n, n))
    return Scores(rng.uniform(0.0, 1.0, n), (raw + raw.T) / 2.0)


def random_problem(seed: int, n: int, k: int, diversity: float) -> Problem:
    return Problem.build(random_scores(seed, n), k, diversity)


def by_hand(problem: Problem, subset: list[int]) -> float:
    """f(S) = sum r_i - d * sum over unordered pairs i < j of s_ij, in plain Python."""
    relevance = [float(x) for x in problem.relevance]
    similarity = [[float(x) for x in row] for row in problem.similarity]
    total = sum(relevance[i] for i in subset)
    pairs = sum(similarity[i][j] for i in subset for j in subset if i < j)
    return total - problem.diversity * pairs


def random_subsets(seed: int, n: int, k: int, count: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(i) for i in rng.choice(n, k, replace=False)] for _ in range(count)]


CASES = [
    (n, k, diversity)
    for n, k in ((5, 1), (6, 2), (8, 3), (10, 5), (7, 7))
    for diversity in (0.0, 0.3, 1.0)
]


@pytest.mark.parametrize(("n", "k", "diversity"), CASES)
def test_values_and_value_equal_the_formula_evaluated_by_hand(
    n: int, k: int, diversity: float
) -> None:
    # given a random problem and random subsets of size k
    problem = random_problem(n * 100 + k, n, k, diversity)
    subsets = random_subsets(n + k, n, k, 20)
    expected = [by_hand(problem, subset) for subset in subsets]
    # when
    batch = problem.values(np.asarray(subsets, dtype=np.int64))
    one_by_one = [problem.value(subset) for subset in subsets]
    # then
    assert batch.shape == (len(subsets),)
    assert batch == pytest.approx(expected, abs=1e-12)
    assert one_by_one == pytest.approx(expected, abs=1e-12)


def test_the_pair_weight_is_the_diversity_whatever_k() -> None:
    # given / when / then: the QUBO weight on each unordered pair
    assert random_problem(0, 6, 3, 0.6).pair_weight == pytest.approx(0.6)
    assert random_problem(0, 9, 5, 0.6).pair_weight == pytest.approx(0.6)


def test_value_does_not_depend_on_the_order_of_the_subset() -> None:
    # given
    problem = random_problem(3, 9, 4, 0.7)
    # when / then
    assert problem.value([1, 5, 7, 8]) == pytest.approx(problem.value([8, 1, 7, 5]), abs=1e-12)


@pytest.mark.parametrize(("n", "k", "diversity"), CASES)
def test_item_scores_sum_to_the_objective(n: int, k: int, diversity: float) -> None:
    # given
    problem = random_problem(n * 7 + k, n, k, diversity)
    for subset in random_subsets(n * k, n, k, 10):
        # when
        scores = problem.item_scores(subset)
        # then
        assert scores.shape == (k,)
        assert float(scores.sum()) == pytest.approx(problem.value(subset), abs=1e-12)


def test_item_score_is_relevance_minus_diversity_times_half_its_similarity_to_the_others() -> None:
    # given
    problem = random_problem(11, 8, 4, 0.4)
    subset = [2, 5, 6, 7]
    # when
    scores = problem.item_scores(subset)
    # then
    for position, i in enumerate(subset):
        half = sum(float(problem.similarity[i, j]) for j in subset if j != i) / 2
        assert scores[position] == pytest.approx(float(problem.relevance[i]) - 0.4 * half)


def test_with_diversity_zero_the_objective_is_the_sum_of_relevances() -> None:
    # given
    problem = random_problem(5, 10, 4, 0.0)
    for subset in random_subsets(6, 10, 4, 10):
        # when / then
        expected = sum(float(problem.relevance[i]) for i in subset)
        assert problem.value(subset) == pytest.approx(expected, abs=1e-12)


def test_with_diversity_zero_the_best_subset_is_the_plain_top_k() -> None:
    # given
    problem = random_problem(8, 9, 3, 0.0)
    top = sorted(range(9), key=lambda i: -float(problem.relevance[i]))[:3]
    # when
    best = max(itertools.combinations(range(9), 3), key=lambda s: problem.value(list(s)))
    # then
    assert sorted(best) == sorted(top)


@pytest.mark.parametrize(("k", "diversity"), [(1, 0.5), (3, 0.0), (4, 0.5), (5, 1.0)])
def test_rank_orders_the_chosen_by_score_with_ranks_one_to_k(k: int, diversity: float) -> None:
    # given
    problem = random_problem(20 + k, 10, k, diversity)
    subset = random_subsets(k, 10, k, 1)[0]
    # when
    ranked = problem.rank(subset)
    # then
    assert [item.rank for item in ranked] == list(range(1, k + 1))
    assert sorted(item.index for item in ranked) == sorted(subset)
    assert all(isinstance(item.index, int) for item in ranked)
    scores = [item.score for item in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)
    expected = dict(zip(subset, problem.item_scores(subset), strict=True))
    for item in ranked:
        assert item.score == pytest.approx(
            min(max(float(expected[item.index]), 0.0), 1.0), abs=1e-6
        )


def test_rank_clips_negative_scores_to_zero() -> None:
    # given three identical, barely relevant candidates, all chosen, with full diversity
    scores = Scores(np.array([0.1, 0.1, 0.1]), np.ones((3, 3)))
    problem = Problem.build(scores, 3, 1.0)
    # when
    ranked = problem.rank([0, 1, 2])
    # then each item's own score is 0.1 - 1 = -0.9, reported as 0
    assert [item.score for item in ranked] == [0.0, 0.0, 0.0]
    assert [item.index for item in ranked] == [0, 1, 2]  # ties: the earlier candidate first


def test_rank_breaks_score_ties_by_relevance_before_position() -> None:
    # given candidates 0 and 1 whose scores tie exactly at 0.5, the later one more relevant
    relevance = np.array([0.5, 0.75, 0.25])
    similarity = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
    problem = Problem.build(Scores(relevance, similarity), 3, 1.0)
    # when
    ranked = problem.rank([0, 1, 2])
    # then
    assert [item.score for item in ranked] == [0.5, 0.5, 0.0]
    assert [item.index for item in ranked] == [1, 0, 2]


def test_a_chosen_near_duplicate_pair_ranks_below_a_distinct_candidate_of_equal_relevance() -> None:
    # given candidates 0 and 1 nearly the same, 2 unlike both, all equally relevant
    relevance = np.array([0.9, 0.9, 0.9])
    similarity = np.array([[0.0, 0.95, 0.05], [0.95, 0.0, 0.05], [0.05, 0.05, 0.0]])
    problem = Problem.build(Scores(relevance, similarity), 3, 1.0)
    # when
    ranked = problem.rank([0, 1, 2])
    # then the distinct one comes first and the duplicates score lower
    assert ranked[0].index == 2
    by_index = {item.index: item.score for item in ranked}
    assert by_index[0] < by_index[2]
    assert by_index[1] < by_index[2]
    assert by_index[2] == pytest.approx(0.9 - 0.05)
    assert by_index[0] == pytest.approx(0.9 - (0.95 + 0.05) / 2)


def test_build_symmetrises_zeroes_the_diagonal_and_clips() -> None:
    # given a lopsided similarity with a diagonal and values outside [0, 1]
    relevance = np.array([-0.5, 0.4, 1.7])
    similarity = np.array([[0.8, 0.2, 1.5], [0.6, 0.9, -0.3], [0.1, 0.5, 0.7]])
    # when
    problem = Problem.build(Scores(relevance, similarity), 2, 0.5)
    # then
    assert problem.relevance.tolist() == [0.0, 0.4, 1.0]
    assert np.array_equal(problem.similarity, problem.similarity.T)
    assert np.all(np.diag(problem.similarity) == 0.0)
    assert np.all((problem.similarity >= 0.0) & (problem.similarity <= 1.0))
    assert problem.similarity[0, 1] == pytest.approx(0.4)
    assert problem.similarity[1, 2] == pytest.approx(0.25)  # -0.3 clipped to 0, then averaged
    assert problem.similarity[0, 2] == pytest.approx(0.55)  # 1.5 clipped to 1, then averaged
    assert problem.n == 3
    assert problem.k == 2
    assert problem.diversity == 0.5


def test_build_does_not_modify_the_scores_it_is_given() -> None:
    # given
    scores = random_scores(1, 5)
    similarity = scores.similarity.copy()
    # when
    Problem.build(scores, 2, 0.5)
    # then
    assert np.array_equal(scores.similarity, similarity)


@pytest.mark.parametrize("k", [0, -1, 6])
def test_build_refuses_k_outside_one_to_n(k: int) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="k must be between 1 and 5"):
        Problem.build(random_scores(2, 5), k, 0.5)


@pytest.mark.parametrize("k", [1, 5])
def test_build_accepts_k_at_the_bounds(k: int) -> None:
    assert Problem.build(random_scores(2, 5), k, 0.5).k == k


def test_restrict_gives_the_sub_problem_over_the_mapped_candidates() -> None:
    # given
    problem = random_problem(4, 12, 3, 0.8)
    indices = [9, 2, 7, 0, 11, 4]
    # when
    sub = problem.restrict(indices)
    # then
    assert sub.n == len(indices)
    assert (sub.k, sub.diversity) == (problem.k, problem.diversity)
    assert sub.relevance.tolist() == [float(problem.relevance[i]) for i in indices]
    for subset in itertools.combinations(range(len(indices)), 3):
        mapped = [indices[i] for i in subset]
        assert sub.value(list(subset)) == pytest.approx(problem.value(mapped), abs=1e-12)
        assert sub.item_scores(list(subset)) == pytest.approx(problem.item_scores(mapped))
