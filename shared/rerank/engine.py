"""One rerank, start to end: score the texts, build the problem, solve it on the tier's solver,
rank the chosen candidates, and report what the solver did.

Importing this module costs numpy and scipy (the scorer, the solvers), so only the queue worker
imports it, when it runs the first rerank; the HTTP functions never do.

The quantum tiers run QAOA (`qaoa`) in the simulator's process pool (`aer.run_in_pool`): Aer
holds the GIL while it runs, and the worker shares its process with the HTTP functions. Their
shortlist is the first `RerankSettings.qubits` candidates in greedy order (the order in which
the greedy solver would add them), so it holds the greedy answer and the candidates that add
most to it; with no more candidates than qubits, it is all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.config import RerankSettings
from shared.rerank import classic, qaoa
from shared.rerank.problem import Problem
from shared.rerank.schemas import RankedCandidate, RerankRequest, SolverReport, Tier
from shared.rerank.scoring import Scorer, build_scorer
from shared.suppliers import aer

OPTIMIZER = "COBYLA after a grid of 10 points"


@dataclass(frozen=True)
class RerankResult:
    ranked: list[RankedCandidate]
    solver: SolverReport
    processing_time_seconds: float


class Reranker:
    def __init__(self, settings: RerankSettings, scorer: Scorer | None = None) -> None:
        self._settings = settings
        self._scorer = scorer or build_scorer(settings)

    @property
    def scorer(self) -> Scorer:
        return self._scorer

    def run(self, request: RerankRequest, *, seed: int) -> RerankResult:
        """Rerank. Raises what the scorer raises (`ScorerUnavailable`, retried, for an
        embeddings service that is down; `ScorerRejected`, permanent, for one that refuses the
        request) and `SimulatorUnavailable` (retried) when the QAOA's process dies."""
        started = time.perf_counter()
        scores = self._scorer.score(request.query, request.candidates)
        problem = Problem.build(scores, request.k, request.diversity)
        scored = time.perf_counter()
        if request.tier.quantum:
            subset, report = self._quantum(problem, request, seed)
        else:
            subset, report = self._classic(problem)
        solved = time.perf_counter()
        exact = None
        if classic.exact_is_computable(problem):
            exact = report.get("exact_optimum")
            if exact is None:
                exact = classic.exact(problem).objective
        objective = problem.value(subset)
        solver = SolverReport(
            scorer=self._scorer.name,
            objective=round(objective, 6),
            exact_optimum=None if exact is None else round(exact, 6),
            approximation_ratio=_ratio(objective, exact),
            scoring_seconds=round(scored - started, 4),
            solve_seconds=round(solved - scored, 4),
            **{k: v for k, v in report.items() if k != "exact_optimum"},
        )
        ranked = [
            RankedCandidate(
                text=request.candidates[item.index],
                score=item.score,
                rank=item.rank,
                index=item.index,
            )
            for item in problem.rank(subset)
        ]
        return RerankResult(ranked, solver, round(time.perf_counter() - started, 4))

    def _classic(self, problem: Problem) -> tuple[tuple[int, ...], dict[str, Any]]:
        solution = classic.solve(problem)
        report: dict[str, Any] = {
            "method": solution.method,
            "device": qaoa.CPU,
            "fallback": False,
            "candidates_considered": problem.n,
            "qubits": 0,
            "shots": 0,
            "subsets_evaluated": solution.evaluated,
        }
        if solution.method == "exact":
            report["exact_optimum"] = solution.objective
        return solution.subset, report

    def _quantum(
        self, problem: Problem, request: RerankRequest, seed: int
    ) -> tuple[tuple[int, ...], dict[str, Any]]:
        width = min(self._settings.qubits, problem.n)
        shortlist = classic.greedy(problem, count=width) if problem.n > width else None
        small = problem.restrict(shortlist) if shortlist else problem
        options = qaoa.QaoaOptions(
            layers=self._settings.layers,
            shots=self._settings.shots,
            max_iters=request.max_iters,
            device=qaoa.GPU if request.tier is Tier.QUANTUM_GPU else qaoa.CPU,
            seed=seed,
        )
        outcome: qaoa.QaoaOutcome = aer.run_in_pool(
            qaoa.solve, small, options, what="The QAOA solver"
        )
        subset = tuple(sorted(shortlist[i] if shortlist else i for i in outcome.subset))
        report: dict[str, Any] = {
            "method": "qaoa",
            "device": outcome.device,
            "fallback": outcome.fallback,
            "candidates_considered": small.n,
            "qubits": outcome.qubits,
            "circuit_depth": outcome.depth,
            "two_qubit_gates": outcome.two_qubit_gates,
            "layers": outcome.layers,
            "shots": outcome.shots,
            "optimizer": OPTIMIZER,
            "optimizer_iterations": outcome.iterations,
            "shortlist_optimum": round(outcome.optimum, 6),
            "expectation": round(outcome.expectation, 6),
            "uniform_expectation": round(outcome.uniform_expectation, 6),
            "optimum_probability": round(outcome.optimum_probability, 6),
            "uniform_probability": round(outcome.uniform_probability, 6),
        }
        if shortlist is None:
            report["exact_optimum"] = outcome.optimum  # the shortlist is every candidate
        return subset, report


@lru_cache(maxsize=4)
def reranker(settings: RerankSettings) -> Reranker:
    """The process's reranker for `settings`, made on the first rerank."""
    return Reranker(settings)


def _ratio(objective: float, optimum: float | None) -> float | None:
    if optimum is None or optimum <= 0:
        return None
    return round(objective / optimum, 6)
