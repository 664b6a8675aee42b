"""`/rerank`, calling the registered functions directly against Azurite, with the queue worker
run by hand: every tier, the bad inputs, and who sees which job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import azure.functions.queue as fq
import pytest

from shared.accounts.tiers import TIERS, TierName
from shared.api import jobs, rerank, worker
from shared.jobs.messages import JobMessage
from shared.services import Services

QUERY = "how do I reset my password"
# Two near-duplicates about resetting the password, and three other aspects of passwords.
CANDIDATES = [
    "To reset your password, open Settings and choose Reset password.",
    "Open Settings and pick Reset password to reset your password.",
    "A reset link for your password is emailed to you and expires after one hour.",
    "Passwords must be at least 12 characters long.",
    "If you forgot your username, contact support to recover your account.",
    "Our office is open from 9 to 5 on weekdays.",
]


def submit(http: Callable[..., Any], user: Any, **body: Any) -> Any:
    request = {"query": QUERY, "candidates": CANDIDATES, **body}
    return http(rerank.rerank, "POST", "/rerank", body=request, headers=user.headers)


def deliver(user_id: str, job_id: str) -> None:
    """Hand the queue worker one delivery of the job's message."""
    worker.run_job(
        fq.QueueMessage(
            id=uuid.uuid4().hex, body=JobMessage(user_id, job_id).encode().encode(), dequeue_count=1
        )
    )


def read(http: Callable[..., Any], user: Any, job_id: str) -> Any:
    return http(
        rerank.rerank_job,
        "GET",
        f"/rerank/{job_id}",
        headers=user.headers,
        route_params={"job_id": job_id},
    )


def run(http: Callable[..., Any], user: Any, **body: Any) -> dict[str, Any]:
    accepted = submit(http, user, **body)
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    deliver(user.user_id, job_id)
    answer = read(http, user, job_id)
    assert answer.status == 200
    return dict(answer.body)


def test_a_classic_rerank_is_queued_then_solved_exactly_by_the_worker(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a user
    user = make_user()
    # when they queue a rerank of six candidates for three
    accepted = submit(http, user, k=3, diversity=1.0)
    # then it is accepted like a job, and pollable where Location says
    assert accepted.status == 202
    job_id = accepted.body["job_id"]
    assert accepted.body["status"] == "queued"
    assert accepted.headers["Location"] == f"/rerank/{job_id}"
    queued = read(http, user, job_id).body
    assert queued["status"] == "queued" and queued["ranked_candidates"] == []
    assert queued["tier"] == "classic" and queued["solver"] is None
    # when the worker runs it
    deliver(user.user_id, job_id)
    body = read(http, user, job_id).body
    # then three candidates come back, rank 1 first, scores in 0..1, the texts as sent
    assert body["status"] == "completed"
    ranked = body["ranked_candidates"]
    assert [c["rank"] for c in ranked] == [1, 2, 3]
    assert all(0.0 <= c["score"] <= 1.0 for c in ranked)
    assert [c["score"] for c in ranked] == sorted((c["score"] for c in ranked), reverse=True)
    assert all(c["text"] == CANDIDATES[c["index"]] for c in ranked)
    # and with diversity 1 the two near-duplicates are not both chosen
    assert not {0, 1} <= {c["index"] for c in ranked}
    # and the solver says it was exact, at the optimum
    solver = body["solver"]
    assert solver["method"] == "exact" and solver["device"] == "CPU"
    assert solver["approximation_ratio"] == 1.0
    assert solver["objective"] == solver["exact_optimum"]
    assert solver["subsets_evaluated"] == 20 and solver["qubits"] == 0
    assert body["processing_time_seconds"] > 0


def test_without_diversity_the_rerank_is_plain_top_k_by_relevance(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    body = run(http, user, k=2, diversity=0.0)
    # both near-duplicates are the two most relevant: with diversity 0 both are chosen
    assert {c["index"] for c in body["ranked_candidates"]} == {0, 1}


@pytest.mark.parametrize("tier", ["quantum_cpu", "quantum_gpu"])
def test_a_quantum_rerank_runs_qaoa_on_aer_and_reports_what_ran(
    tier: str,
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
) -> None:
    from qiskit_aer import AerSimulator

    # given a user
    user = make_user()
    # when they queue a quantum rerank and the worker runs it
    body = run(http, user, k=2, tier=tier, max_iters=20, diversity=1.0)
    # then k candidates come back from a QAOA over every candidate (one qubit each)
    assert body["status"] == "completed" and body["tier"] == tier
    assert len(body["ranked_candidates"]) == 2
    solver = body["solver"]
    assert solver["method"] == "qaoa"
    assert solver["qubits"] == solver["candidates_considered"] == len(CANDIDATES)
    assert solver["shots"] == services_env.settings.rerank.shots
    assert 0 < solver["optimizer_iterations"] <= 20
    assert solver["circuit_depth"] > 0 and solver["two_qubit_gates"] > 0
    assert solver["layers"] == services_env.settings.rerank.layers
    # and the optimum is known (C(6, 2) subsets), so the ratio is reported
    assert solver["exact_optimum"] == solver["shortlist_optimum"]
    assert 0 < solver["approximation_ratio"] <= 1.0
    assert solver["expectation"] >= solver["uniform_expectation"]
    # and the device is the one that ran: the GPU tier says when it fell back to the CPU
    has_gpu = "GPU" in AerSimulator().available_devices()
    if tier == "quantum_gpu":
        assert solver["device"] == ("GPU" if has_gpu else "CPU")
        assert solver["fallback"] is (not has_gpu)
    else:
        assert solver["device"] == "CPU" and solver["fallback"] is False


def test_a_quantum_rerank_of_many_candidates_solves_a_shortlist_of_the_configured_qubits(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given 40 candidates, more than the 16 qubits
    user = make_user()
    candidates = [f"Passage {i} about topic {i % 7} and password reset {i}" for i in range(40)]
    body = run(http, user, candidates=candidates, k=4, tier="quantum_cpu", max_iters=10)
    solver = body["solver"]
    # then the QAOA ran on the shortlist, and the exact optimum over all 40 is still known
    assert solver["qubits"] == solver["candidates_considered"] == 16
    assert solver["exact_optimum"] is not None  # C(40, 4) = 91,390 subsets
    assert solver["objective"] <= solver["shortlist_optimum"] <= solver["exact_optimum"] + 1e-9
    assert len(body["ranked_candidates"]) == 4


_TOO_LONG = "x" * 4001


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"candidates": ["only one"]}, "candidates"),
        ({"candidates": [f"text {i}" for i in range(101)]}, "candidates"),
        ({"candidates": ["fine", ""]}, "candidates.1"),
        ({"candidates": ["fine", "   \n "]}, "candidates.1"),
        ({"candidates": ["fine", _TOO_LONG]}, "candidates.1"),
        ({"query": ""}, "query"),
        ({"query": "q" * 1001}, "query"),
        ({"k": 7}, "k (7) must be at most the number of candidates (6)"),
        ({"k": 0}, "k"),
        ({"k": 21}, "k"),
        ({"tier": "quantum_tpu"}, "tier"),
        ({"max_iters": 9}, "max_iters"),
        ({"max_iters": 201}, "max_iters"),
        ({"diversity": 1.5}, "diversity"),
        ({"diversity": -0.1}, "diversity"),
        ({"owner": "someone-else"}, "owner"),
    ],
)
def test_bad_input_is_refused_with_the_standard_error_and_nothing_is_queued(
    change: dict[str, Any],
    where: str,
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
) -> None:
    # given a user
    user = make_user()
    # when they send a request with one thing wrong
    answer = submit(http, user, **change)
    # then it is refused with the standard body, naming what is wrong
    assert answer.status == 422, answer.body
    assert set(answer.body) == {"detail", "error_code", "request_id"}
    assert answer.body["error_code"] == "VALIDATION_ERROR"
    assert where in answer.body["detail"]
    # and no job was recorded
    usage = services_env.jobs.usage(user.user_id)
    assert usage.jobs_total == 0


def test_a_quantum_k_larger_than_the_shortlist_is_refused(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    candidates = [f"candidate number {i}" for i in range(30)]
    answer = submit(http, user, candidates=candidates, k=17, tier="quantum_cpu")
    assert answer.status == 422
    assert answer.body["error_code"] == "VALIDATION_ERROR"
    assert "shortlist of 16" in answer.body["detail"]
    # the classic tier takes the same request
    assert submit(http, user, candidates=candidates, k=17).status == 202


def test_another_users_rerank_is_not_found_and_circuit_endpoints_do_not_see_it(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given Alice's rerank
    alice, bob = make_user(), make_user()
    job_id = submit(http, alice).body["job_id"]
    # then Bob cannot read it
    answer = read(http, bob, job_id)
    assert answer.status == 404 and answer.body["error_code"] == "JOB_NOT_FOUND"
    # and it is not a circuit job: the v1 status endpoint does not find it
    status = http(
        jobs.job_status,
        "GET",
        f"/api/v1/status/{job_id}",
        headers=alice.headers,
        route_params={"job_id": job_id},
    )
    assert status.status == 404
    # and a circuit job is not found under /rerank
    circuit = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        body={"qasm": 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nh q[0];\n'},
        headers=alice.headers,
    )
    assert read(http, alice, circuit.body["job_id"]).status == 404


def test_a_queued_rerank_can_be_cancelled_and_then_never_runs(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a free user's queued rerank, which took one job of the day's quota
    user = make_user("free")
    job_id = submit(http, user).body["job_id"]
    assert services_env.quotas.use(user.user_id, TIERS[TierName.FREE]).used == 1
    # when they cancel it
    cancelled = http(
        rerank.cancel_rerank,
        "DELETE",
        f"/rerank/{job_id}",
        headers=user.headers,
        route_params={"job_id": job_id},
    )
    # then it is cancelled, the quota is given back, and a delivery does not run it
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
    assert services_env.quotas.use(user.user_id, TIERS[TierName.FREE]).used == 0
    deliver(user.user_id, job_id)
    body = read(http, user, job_id).body
    assert body["status"] == "cancelled" and body["ranked_candidates"] == []


def test_a_completed_rerank_is_in_the_ledger_at_no_cost(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # given a quantum rerank that ran
    user = make_user()
    body = run(http, user, k=2, tier="quantum_cpu", max_iters=10)
    # then the ledger has its entry: its tier as the backend, its shots, and nothing charged
    entry = services_env.ledger.repo.get(user.user_id, body["job_id"])
    assert entry is not None
    assert entry.backend == "rerank:quantum_cpu" and entry.shots == body["solver"]["shots"]
    assert Decimal(entry.cost) == 0
