"""Request and response models of `/rerank`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.jobs.schemas import JOB_ID_FIELD, TAGS_FIELD, JobError, Tags

MAX_CANDIDATES = 100
MAX_CANDIDATE_CHARS = 4000
MAX_QUERY_CHARS = 1000
MAX_K = 20
DEFAULT_DIVERSITY = 0.75


class Tier(StrEnum):
    CLASSIC = "classic"
    QUANTUM_CPU = "quantum_cpu"
    QUANTUM_GPU = "quantum_gpu"

    @property
    def quantum(self) -> bool:
        return self is not Tier.CLASSIC


def _text(max_chars: int) -> object:
    # Text with at least one character that is not white space.
    return StringConstraints(min_length=1, max_length=max_chars, pattern=r"\S")


Candidate = Annotated[str, _text(MAX_CANDIDATE_CHARS)]

_EXAMPLE: dict[str, Any] = {
    "query": "how do I reset my password",
    "candidates": [
        "To reset your password, open Settings and choose Reset password.",
        "Open Settings and pick Reset password to reset your password.",
        "Passwords must be at least 12 characters long.",
        "If you forgot your username, contact support.",
    ],
    "k": 2,
    "tier": "quantum_cpu",
}


class RerankRequest(BaseModel):
    """Candidates to choose k of: relevant to the query and not redundant with each other."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    candidates: list[Candidate] = Field(
        min_length=2,
        max_length=MAX_CANDIDATES,
        description=f"2 to {MAX_CANDIDATES} texts, each 1 to {MAX_CANDIDATE_CHARS} characters "
        "and not only white space",
    )
    query: Annotated[str, _text(MAX_QUERY_CHARS)] = Field(
        description=f"The query, 1 to {MAX_QUERY_CHARS} characters"
    )
    k: int = Field(
        4, ge=1, le=MAX_K, description="How many to choose (at most the number of candidates)"
    )
    tier: Tier = Field(
        Tier.CLASSIC,
        description="`classic` (exact or greedy plus local search), `quantum_cpu` (QAOA on Aer) "
        "or `quantum_gpu` (QAOA on Aer's GPU device; on the CPU, and said so, where there is "
        "none)",
    )
    max_iters: int = Field(
        50, ge=10, le=200, description="Circuit evaluations the QAOA optimiser may spend"
    )
    diversity: float = Field(
        DEFAULT_DIVERSITY,
        ge=0.0,
        le=1.0,
        description="Weight of redundancy against relevance: the objective is total relevance "
        "minus `diversity` times the similarity of every chosen pair. 0 is plain top-k by "
        "relevance; at 1 an exact duplicate of a chosen candidate adds nothing",
    )
    job_id: str | None = JOB_ID_FIELD
    tags: Tags | None = TAGS_FIELD

    @model_validator(mode="after")
    def _k_fits(self) -> RerankRequest:
        if self.k > len(self.candidates):
            raise ValueError(
                f"k ({self.k}) must be at most the number of candidates ({len(self.candidates)})"
            )
        return self


class RankedCandidate(BaseModel):
    text: str
    score: float = Field(
        ge=0.0,
        le=1.0,
        description="Relevance minus `diversity` times half the summed similarity to the other "
        "chosen candidates (the scores add up to the objective), clipped to 0..1",
    )
    rank: int = Field(ge=1, description="1 is the best")
    index: int = Field(ge=0, description="The candidate's position in the request")


class SolverReport(BaseModel):
    """What ran, and how good its answer is."""

    method: str = Field(examples=["qaoa"], description="exact, greedy+local_search or qaoa")
    scorer: str = Field(examples=["lexical"], description="The text scorer of the settings")
    device: str = Field(examples=["CPU"], description="CPU or GPU: where the solver ran")
    fallback: bool = Field(
        description="True when the GPU was asked for and this deployment has none"
    )
    candidates_considered: int = Field(
        description="Candidates the solver chose from: all of them, or the QAOA's shortlist"
    )
    qubits: int = Field(description="0 for the classic tier")
    circuit_depth: int | None = Field(
        None, description="Of the whole circuit in CX and single-qubit rotations"
    )
    two_qubit_gates: int | None = None
    layers: int | None = Field(None, description="QAOA layers (cost and mixer)")
    shots: int = Field(description="Shots sampled from the optimised circuit (0: none)")
    optimizer: str | None = Field(None, examples=["COBYLA"])
    optimizer_iterations: int | None = Field(
        None, description="Circuit evaluations the optimiser spent (at most max_iters)"
    )
    subsets_evaluated: int | None = Field(
        None, description="Classic tier: subsets scored (exact) or swaps tried (local search)"
    )
    objective: float = Field(description="The objective of the chosen subset")
    exact_optimum: float | None = Field(
        None, description="The best objective over every subset, when there are few enough"
    )
    approximation_ratio: float | None = Field(
        None, description="objective / exact_optimum (when both are known and the optimum > 0)"
    )
    shortlist_optimum: float | None = Field(
        None, description="QAOA: the best objective over the shortlist's subsets"
    )
    expectation: float | None = Field(
        None, description="QAOA: the objective's expectation at the optimised angles"
    )
    uniform_expectation: float | None = Field(
        None, description="QAOA: the same in the uniform superposition of k-subsets (no layers)"
    )
    optimum_probability: float | None = Field(
        None, description="QAOA: probability of measuring a best shortlist subset"
    )
    uniform_probability: float | None = Field(
        None, description="QAOA: the same for the uniform superposition, for comparison"
    )
    scoring_seconds: float
    solve_seconds: float


class RerankJob(BaseModel):
    job_id: str
    status: str = Field(examples=["completed"])
    tier: Tier
    ranked_candidates: list[RankedCandidate] = Field(
        description="k entries, rank 1 first, once completed (empty before)"
    )
    processing_time_seconds: float | None = Field(
        None, description="Scoring and solving, in the worker"
    )
    solver: SolverReport | None = None
    error: JobError | None = None
    created_at: str
    completed_at: str | None = None
