"""`shared.rerank.engine.Reranker` on the classic tier: score, solve, rank the chosen candidates
and report what the solver did (the quantum tiers run QAOA in the simulator's processes:
tests/functions/test_rerank_api.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.config import RerankSettings
from shared.rerank.engine import Reranker, RerankResult
from shared.rerank.problem import Scores
from shared.rerank.schemas import RerankRequest

QUERY = "how do I reset my password"
CANDIDATES = [
    "To reset your password, open Settings and choose Reset password.",
    "To reset your password, open Settings and choose Reset password.",  # a duplicate
    "Passwords must be at least 12 characters long.",
    "If you forgot your username, contact support.",
    "Reset the router by holding its button.",
]


class Fixed:
    """A scorer that answers given relevances, every pair of candidates equally similar."""

    name = "fixed"

    def __init__(self, relevance: npt.ArrayLike, similarity: float = 0.0) -> None:
        self.relevance = np.asarray(relevance, dtype=np.float64)
        self.similarity = similarity
        self.asked: list[tuple[str, int]] = []

    def score(self, query: str, candidates: Sequence[str]) -> Scores:
        self.asked.append((query, len(candidates)))
        n = len(candidates)
        return Scores(self.relevance, np.full((n, n), self.similarity))


def rerank(
    candidates: list[str], k: int, diversity: float, scorer: Fixed | None = None
) -> RerankResult:
    request = RerankRequest(query=QUERY, candidates=candidates, k=k, diversity=diversity)
    return Reranker(RerankSettings(), scorer).run(request, seed=7)


def test_without_diversity_the_most_relevant_are_chosen_duplicates_and_all() -> None:
    result = rerank(CANDIDATES, k=2, diversity=0.0)
    assert [item.index for item in result.ranked] == [0, 1]


def test_with_full_diversity_a_duplicate_of_a_chosen_candidate_is_passed_over() -> None:
    # when
    result = rerank(CANDIDATES, k=2, diversity=1.0)
    # then one of the two identical answers is chosen, with something else beside it
    chosen = [item.index for item in result.ranked]
    assert len({CANDIDATES[i] for i in chosen}) == 2
    assert chosen[0] in (0, 1)


def test_the_chosen_are_ranked_from_1_with_their_texts_and_positions() -> None:
    # given relevances that put candidate 3 first, then 0, then 4
    scorer = Fixed([0.8, 0.1, 0.2, 0.9, 0.7])
    # when
    result = rerank(CANDIDATES, k=3, diversity=0.5, scorer=scorer)
    # then
    assert [(i.rank, i.index, i.score) for i in result.ranked] == [
        (1, 3, 0.9),
        (2, 0, 0.8),
        (3, 4, 0.7),
    ]
    assert all(item.text == CANDIDATES[item.index] for item in result.ranked)
    assert scorer.asked == [(QUERY, 5)]


def test_scores_are_relevance_less_half_the_shared_similarity_and_add_up_to_the_objective() -> None:
    # given every pair 0.4 similar, weighed fully
    result = rerank(CANDIDATES, k=2, diversity=1.0, scorer=Fixed([0.9, 0.1, 0.1, 0.8, 0.1], 0.4))
    # then each chosen item pays half of its pair's 0.4
    assert [(i.index, i.score) for i in result.ranked] == [(0, 0.7), (3, 0.6)]
    assert result.solver.objective == round(0.9 + 0.8 - 0.4, 6)


def test_a_small_problem_is_solved_exactly_and_says_so() -> None:
    report = rerank(CANDIDATES, k=2, diversity=0.75).solver
    assert report.method == "exact"
    assert report.approximation_ratio == 1.0 and report.exact_optimum == report.objective
    assert (report.qubits, report.shots, report.device, report.fallback) == (0, 0, "CPU", False)
    assert report.candidates_considered == 5 and report.subsets_evaluated == 10
    assert report.scorer == "lexical"


def test_a_large_problem_is_solved_by_the_heuristic_without_an_exact_optimum() -> None:
    # given 60 candidates, k = 10: about 7.5e10 subsets, too many to try
    rng = np.random.default_rng(3)
    scorer = Fixed(rng.uniform(0.0, 1.0, 60), similarity=0.2)
    # when
    result = rerank([f"text {n}" for n in range(60)], k=10, diversity=0.5, scorer=scorer)
    # then
    assert result.solver.method == "greedy+local_search"
    assert result.solver.exact_optimum is None and result.solver.approximation_ratio is None
    assert len(result.ranked) == 10 and [i.rank for i in result.ranked] == list(range(1, 11))
