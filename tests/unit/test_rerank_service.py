"""`shared.rerank.service`: what a rerank request may ask of the quantum tiers, its job's seed,
and the worker's runner for rerank jobs (accepting and reading them goes through the job
service: tests/functions/test_rerank_api.py)."""

from __future__ import annotations

import json

import pytest

from shared.config import RerankSettings
from shared.errors import ValidationFailed
from shared.jobs.models import Job, JobStatus
from shared.rerank.schemas import RerankRequest, Tier
from shared.rerank.service import check_quantum_k, run_task, seed_for

SETTINGS = RerankSettings(qubits=4)
CANDIDATES = [
    "To reset your password, open Settings and choose Reset password.",
    "Open Settings and pick Reset password to reset your password.",
    "Passwords must be at least 12 characters long.",
    "If you forgot your username, contact support.",
    "Reset the router by holding its button.",
    "Change your password every year.",
]


def request(k: int, tier: Tier) -> RerankRequest:
    return RerankRequest(query="reset my password", candidates=CANDIDATES, k=k, tier=tier)


def job(job_id: str = "job-1") -> Job:
    return Job("user-1", job_id, JobStatus.PROCESSING, 0, "2026-03-14T12:00:00.000Z", kind="rerank")


def test_the_quantum_tiers_choose_at_most_as_many_as_their_shortlist_holds() -> None:
    # given a QAOA of 4 qubits: a shortlist of 4 candidates
    check_quantum_k(request(4, Tier.QUANTUM_CPU), SETTINGS)
    check_quantum_k(request(6, Tier.CLASSIC), SETTINGS)  # the classic tier has no shortlist
    # when k is 5
    with pytest.raises(ValidationFailed) as refused:
        check_quantum_k(request(5, Tier.QUANTUM_GPU), SETTINGS)
    # then the 422 says why and what fits
    assert refused.value.status == 422
    assert "shortlist of 4 candidates" in refused.value.detail
    assert "k must be at most 4, not 5" in refused.value.detail


def test_a_jobs_seed_is_its_own_and_the_same_every_time() -> None:
    assert seed_for("job-1") == seed_for("job-1")
    assert seed_for("job-1") != seed_for("job-2")
    assert all(0 <= seed_for(f"job-{n}") < 2**32 for n in range(100))


def test_the_runner_stores_the_ranking_and_the_solvers_report() -> None:
    # when the worker runs a classic rerank job
    outcome = run_task(SETTINGS, job(), request(3, Tier.CLASSIC).model_dump_json())
    # then the result holds k ranked candidates, the report and the time taken
    stored = outcome.result
    assert [item["rank"] for item in stored["ranked_candidates"]] == [1, 2, 3]
    assert stored["solver"]["method"] == outcome.method == "exact"
    assert outcome.execution_time_ms == pytest.approx(stored["processing_time_seconds"] * 1000)
    json.dumps(stored)  # a row or blob can hold it


def test_a_rerun_of_a_job_chooses_the_same() -> None:
    payload = request(3, Tier.CLASSIC).model_dump_json()
    first = run_task(SETTINGS, job(), payload).result["ranked_candidates"]
    again = run_task(SETTINGS, job(), payload).result["ranked_candidates"]
    assert first == again


def test_a_stored_request_the_app_no_longer_accepts_fails_the_job_for_good() -> None:
    # given a payload accepted under older limits (k above today's maximum)
    stale = json.dumps({"query": "q", "candidates": CANDIDATES, "k": 99})
    # when / then: a permanent refusal, not a retry
    with pytest.raises(ValidationFailed, match="no longer valid: 1 error"):
        run_task(SETTINGS, job(), stale)
