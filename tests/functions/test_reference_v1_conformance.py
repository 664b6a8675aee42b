"""The v1 reference (`shared/reference/000_*.txt`), example by example: each request as the
reference writes it (a Bell circuit where it writes `...`), routed by its method and path as
the host routes it, and the fields, types and nesting of the answer it documents."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions.queue as fq
import pytest

from shared.api import fallback, worker
from shared.http import HANDLERS
from shared.jobs.messages import JobMessage
from shared.services import Services
from shared.storage.clients import JOBS_QUEUE
from tests.conftest import Answer, call_http

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;"
)
ERROR_KEYS = {"detail", "error_code", "request_id"}
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
REFERENCE_TARGETS = (
    "ionq.aria",
    "ionq.harmony",
    "ionq.simulator",
    "quantinuum.h1-1",
    "quantinuum.h1-2",
    "quantinuum.h2-1",
)


def request(
    method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
) -> Answer:
    """`method path` as the host routes it: the operation's function, else the fallback."""
    template = fallback.allowed(urlsplit(path).path).get(method)
    if template is None:
        return call_http(fallback.fallback, method, path, body=body, headers=headers)
    given = urlsplit(path).path.strip("/").split("/")
    params = {
        part[1:-1]: value
        for part, value in zip(template.strip("/").split("/"), given, strict=False)
        if part.startswith("{")
    }
    return call_http(
        HANDLERS[(method, template)], method, path, body=body, headers=headers, route_params=params
    )


def deliver(user_id: str, job_id: str) -> None:
    """One delivery of the job's queue message to the worker."""
    body = JobMessage(user_id, job_id).encode().encode()
    worker.run_job(fq.QueueMessage(id=uuid.uuid4().hex, body=body, dequeue_count=1))


def assert_types(body: dict[str, Any], types: dict[str, type | tuple[type, ...]]) -> None:
    for name, kind in types.items():
        assert name in body, f"{name} missing from {sorted(body)}"
        assert isinstance(body[name], kind), f"{name}: {body[name]!r} is not {kind}"


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert ERROR_KEYS <= set(answer.body) and answer.body["error_code"] == code
    assert answer.body["request_id"] == answer.headers["X-Request-ID"]


# Health & status


def test_get_root_answers_status_version_and_queue_connected(services_env: Services) -> None:
    services_env.storage.queue(JOBS_QUEUE)  # given the job queue (made by the first job)
    answer = request("GET", "/")
    assert answer.status == 200
    assert_types(answer.body, {"status": str, "version": str, "queue_connected": bool})
    assert answer.body["status"] == "healthy" and answer.body["queue_connected"] is True


def test_get_health_answers_status_ok(services_env: Services) -> None:
    answer = request("GET", "/health")
    assert answer.status == 200 and answer.body["status"] == "ok"


def test_get_ready_answers_200(services_env: Services) -> None:
    answer = request("GET", "/ready")
    assert answer.status == 200 and isinstance(answer.body["status"], str)


# Circuit execution


def test_execute_status_results_as_documented(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    # given the reference's request body
    user = make_user()
    # when it is executed, run by the worker, and read back
    accepted = request(
        "POST", "/api/v1/execute", body={"qasm": BELL, "shots": 1024}, headers=user.headers
    )
    assert accepted.status == 202, accepted.body
    assert_types(
        accepted.body,
        {"job_id": str, "status": str, "message": str, "estimated_time_seconds": (int, float)},
    )
    assert accepted.body["status"] == "queued"
    job_id = accepted.body["job_id"]
    deliver(user.user_id, job_id)
    status = request("GET", f"/api/v1/status/{job_id}", headers=user.headers)
    results = request("GET", f"/api/v1/results/{job_id}", headers=user.headers)
    # then status and results have the documented fields
    assert status.status == 200
    assert_types(
        status.body,
        {"job_id": str, "status": str, "result": dict, "created_at": str, "completed_at": str},
    )
    assert status.body["status"] == "completed"
    assert ISO.match(status.body["created_at"]) and ISO.match(status.body["completed_at"])
    counts = status.body["result"]["counts"]
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 1024
    assert results.status == 200
    assert_types(results.body, {"job_id": str, "counts": dict, "metadata": dict})
    assert_types(
        results.body["metadata"], {"shots": int, "backend": str, "execution_time_ms": (int, float)}
    )
    assert (
        results.body["metadata"] | {"backend": "qiskit_aer", "shots": 1024}
        == (results.body["metadata"])
    )


def test_a_custom_job_id_is_the_job_id(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = f"job_{uuid.uuid4().hex[:12]}"
    accepted = request(
        "POST", "/api/v1/execute", body={"qasm": BELL, "job_id": job_id}, headers=user.headers
    )
    assert accepted.status == 202 and accepted.body["job_id"] == job_id


def test_delete_job_cancels_a_queued_job(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    job_id = request("POST", "/api/v1/execute", body={"qasm": BELL}, headers=user.headers).body[
        "job_id"
    ]
    answer = request("DELETE", f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert answer.status == 200, answer.body
    assert answer.body["job_id"] == job_id and answer.body["status"] == "cancelled"


def test_execute_sync_answers_the_result_directly(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    answer = request(
        "POST", "/execute-sync", body={"qasm": BELL, "shots": 1024}, headers=user.headers
    )
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "completed"
    assert set(answer.body["counts"]) == {"00", "11"}


# Multi-supplier


def test_suppliers_lists_the_three_with_the_documented_fields(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    answer = request("GET", "/api/v1/suppliers", headers=make_user().headers)
    assert answer.status == 200
    for supplier in answer.body["suppliers"]:
        assert_types(supplier, {"id": str, "name": str, "status": str, "providers_count": int})
    assert [s["id"] for s in answer.body["suppliers"]] == ["azure_quantum", "ibm_quantum", "braket"]
    assert {s["name"] for s in answer.body["suppliers"]} == {
        "Azure Quantum",
        "IBM Quantum",
        "AWS Braket",
    }


@pytest.mark.parametrize("supplier", ["azure_quantum", "ibm_quantum", "braket"])
def test_providers_have_target_names_and_a_cost_model_string(
    services_env: Services, make_user: Callable[..., Any], supplier: str
) -> None:
    answer = request("GET", f"/api/v1/{supplier}/providers", headers=make_user().headers)
    assert answer.status == 200
    assert answer.body["providers"]
    for provider in answer.body["providers"]:
        assert_types(
            provider,
            {
                "id": str,
                "name": str,
                "num_qubits": int,
                "targets": list,
                "description": str,
                "cost_model": str,
            },
        )
        assert provider["targets"] and all(isinstance(t, str) for t in provider["targets"])
        assert [t["name"] for t in provider["target_details"]] == provider["targets"]


def test_azure_providers_bill_ionq_per_aqt_and_quantinuum_in_hqc_credits(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    answer = request("GET", "/api/v1/azure_quantum/providers", headers=make_user().headers)
    providers = {p["id"]: p for p in answer.body["providers"]}
    assert providers["ionq"]["name"] == "IonQ" and providers["ionq"]["cost_model"] == "per_aqt"
    assert "ionq.simulator" in providers["ionq"]["targets"]
    assert providers["quantinuum"]["cost_model"] == "hqc_credits"


@pytest.mark.parametrize("supplier", ["azure_quantum", "ibm_quantum", "braket"])
def test_every_listed_target_is_a_backend_execute_takes(
    services_env: Services, make_user: Callable[..., Any], supplier: str
) -> None:
    # given every target name the providers listing gives
    user = make_user("enterprise")
    listing = request("GET", f"/api/v1/{supplier}/providers", headers=user.headers).body
    # when a Bell circuit is sent to each as `backend`
    for provider in listing["providers"]:
        for name, details in zip(provider["targets"], provider["target_details"], strict=True):
            answer = request(
                "POST",
                f"/api/v1/{supplier}/execute",
                body={"qasm": BELL, "backend": name, "shots": 100},
                headers=user.headers,
            )
            # then gate-model targets queue it; analog ones refuse the circuit, and retired
            # ones say so: never an unknown name
            if details["status"] == "retired":
                assert answer.status == 400, (name, answer.body)
                assert answer.body["error_code"] == "BACKEND_RETIRED", (name, answer.body)
            elif details["gate_model"]:
                assert answer.status == 202, (name, answer.body)
            else:
                assert answer.status == 400, (name, answer.body)


def test_execute_on_azure_quantum_ionq_simulator_as_in_the_reference(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    answer = request(
        "POST",
        "/api/v1/azure_quantum/execute",
        body={"qasm": BELL, "backend": "ionq.simulator", "shots": 1024},
        headers=user.headers,
    )
    assert answer.status == 202, answer.body
    assert_types(answer.body, {"job_id": str, "status": str})


RETIRED_TARGETS = {"ionq.harmony", "quantinuum.h1-1", "quantinuum.h1-2"}


@pytest.mark.parametrize("backend", REFERENCE_TARGETS)
def test_the_references_target_names_run_or_say_they_are_retired(
    services_env: Services, make_user: Callable[..., Any], backend: str
) -> None:
    # when
    answer = request(
        "POST",
        "/api/v1/azure_quantum/execute",
        body={"qasm": BELL, "backend": backend, "shots": 100},
        headers=make_user().headers,
    )
    # then: a current device's name runs; a retired one's is refused, naming its successor
    if backend in RETIRED_TARGETS:
        assert answer.status == 400, answer.body
        assert answer.body["error_code"] == "BACKEND_RETIRED"
        assert "successor" in answer.body["detail"]
    else:
        assert answer.status == 202, answer.body


# Reranking


def test_rerank_as_in_the_reference(services_env: Services, make_user: Callable[..., Any]) -> None:
    user = make_user()
    accepted = request(
        "POST",
        "/rerank",
        body={
            "candidates": ["text1", "text2", "text3", "text4"],
            "query": "search query",
            "k": 4,
            "tier": "quantum_gpu",
            "max_iters": 50,
        },
        headers=user.headers,
    )
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    deliver(user.user_id, job_id)
    answer = request("GET", f"/rerank/{job_id}", headers=user.headers)
    assert answer.status == 200
    assert_types(
        answer.body,
        {
            "job_id": str,
            "status": str,
            "tier": str,
            "ranked_candidates": list,
            "processing_time_seconds": (int, float),
        },
    )
    assert answer.body["status"] == "completed" and answer.body["tier"] == "quantum_gpu"
    ranked = answer.body["ranked_candidates"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    for row in ranked:
        assert_types(row, {"text": str, "score": (int, float), "rank": int})


# Users and admin


@pytest.mark.parametrize(("tier", "limit"), [("professional", 1000), ("enterprise", "unlimited")])
def test_user_me_has_the_documented_fields(
    services_env: Services, make_user: Callable[..., Any], tier: str, limit: Any
) -> None:
    answer = request("GET", "/user/me", headers=make_user(tier).headers)
    assert answer.status == 200
    assert_types(
        answer.body,
        {
            "user_id": str,
            "email": str,
            "tier": str,
            "daily_job_limit": (int, str),
            "max_qubits": int,
            "max_shots": int,
            "jobs_today": int,
            "jobs_total": int,
        },
    )
    assert answer.body["tier"] == tier and answer.body["daily_job_limit"] == limit


def test_user_usage_answers_200(services_env: Services, make_user: Callable[..., Any]) -> None:
    answer = request("GET", "/user/usage", headers=make_user("enterprise").headers)
    assert answer.status == 200
    assert answer.body["quota"]["daily_limit"] == "unlimited"


def test_admin_creates_and_reads_a_user_as_in_the_reference(
    services_env: Services, admin_headers: dict[str, str]
) -> None:
    email = f"newuser-{uuid.uuid4().hex[:8]}@example.com"
    created = request(
        "POST", "/admin/users", body={"email": email, "tier": "professional"}, headers=admin_headers
    )
    assert created.status == 201, created.body
    assert_types(created.body, {"user_id": str, "email": str, "tier": str, "api_key": str})
    assert created.body["email"] == email and created.body["tier"] == "professional"
    read = request("GET", f"/admin/users/{created.body['user_id']}", headers=admin_headers)
    assert read.status == 200 and read.body["email"] == email
    assert "api_key" not in read.body  # shown once


# License, legal, pricing


def test_license_status_has_the_documented_fields(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    answer = request("GET", "/api/v1/license/status", headers=make_user().headers)
    assert answer.status == 200
    assert_types(answer.body, {"valid": bool, "features": list, "quantum_verified": bool})
    assert "type" in answer.body and "expires_at" in answer.body


def test_legal_has_the_company_and_four_document_urls(
    services_env: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the operator's details in settings
    from tests.functions.test_legal_api import configure

    configure(
        monkeypatch,
        QCOS_LEGAL_COMPANY_NAME="Example OÜ",
        QCOS_LEGAL_REGISTRY_CODE="17048927",
        QCOS_LEGAL_ADDRESS="Veskiposti tn 2-1002, Tallinn, Estonia",
        QCOS_LEGAL_COUNTRY="Estonia",
        QCOS_LEGAL_DOCUMENTS_URL="https://example.com/legal/",
    )
    answer = request("GET", "/legal")
    assert answer.status == 200
    assert (
        answer.body["company"]
        | {
            "name": "Example OÜ",
            "registry_code": "17048927",
            "address": "Veskiposti tn 2-1002, Tallinn, Estonia",
            "country": "Estonia",
            "eu_member": True,
        }
        == answer.body["company"]
    )
    assert answer.body["documents"] == {
        name: f"https://example.com/legal/{name}"
        for name in ("license", "eula", "terms", "privacy")
    }


@pytest.mark.parametrize("document", ["license", "eula", "terms", "privacy"])
def test_each_legal_document_is_served(services_env: Services, document: str) -> None:
    answer = request("GET", f"/legal/{document}")
    assert answer.status == 200 and isinstance(answer.body, str) and answer.body.strip()


def test_pricing_is_the_reference_table(services_env: Services) -> None:
    answer = request("GET", "/pricing")
    assert answer.status == 200
    documented = [
        {"name": "free", "daily_jobs": 10, "max_qubits": 20, "max_shots": 1024, "price_eur": 0},
        {
            "name": "professional",
            "daily_jobs": 1000,
            "max_qubits": 50,
            "max_shots": 10000,
            "price_eur": 99,
        },
        {
            "name": "enterprise",
            "daily_jobs": "unlimited",
            "max_qubits": 127,
            "max_shots": 100000,
            "price_eur": "custom",
        },
    ]
    assert [{k: t[k] for k in documented[0]} for t in answer.body["tiers"]] == documented


# Errors and rate limits


def test_errors_have_the_documented_format(services_env: Services) -> None:
    answer = request("POST", "/api/v1/execute", body={"qasm": BELL})
    assert_error(answer, 401, "UNAUTHORIZED")
    assert set(answer.body) == ERROR_KEYS
    assert all(isinstance(answer.body[k], str) for k in ERROR_KEYS)


@pytest.mark.parametrize(
    ("tier", "limit"), [("free", 60), ("professional", 300), ("enterprise", 1000)]
)
def test_rate_limit_headers_name_the_tiers_limit(
    services_env: Services, make_user: Callable[..., Any], tier: str, limit: int
) -> None:
    answer = request("GET", "/user/me", headers=make_user(tier).headers)
    assert answer.headers["X-RateLimit-Limit"] == str(limit)
    assert 0 <= int(answer.headers["X-RateLimit-Remaining"]) < limit
    assert int(answer.headers["X-RateLimit-Reset"]) > 1_704_290_400


# What no operation takes


@pytest.mark.parametrize(
    "path",
    [
        "/nothing-here",
        "/api/v1/chemistry/molecules",
        "/api/v1/qec/decode",
        "/api/v1/marketplace/pricing",
        "/api/v1/status",
        "/api/v1/status/a/b",
    ],
)
def test_an_unknown_path_is_the_standard_404(services_env: Services, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        answer = request(method, path, headers={"X-Request-ID": "req_abc12345"})
        assert_error(answer, 404, "NOT_FOUND")
        assert set(answer.body) == ERROR_KEYS
        assert answer.headers["X-Request-ID"] == "req_abc12345"


def test_an_unknown_v2_path_has_the_v2_envelope(services_env: Services) -> None:
    answer = request("GET", "/api/v2/network/nothing/here/at/all")
    assert_error(answer, 404, "NOT_FOUND")
    assert answer.body["success"] is False


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/v1/execute", "POST, OPTIONS"),
        ("PUT", "/health", "GET, HEAD, OPTIONS"),
        ("POST", "/api/v1/jobs/job_1", "DELETE, OPTIONS"),
        ("PATCH", "/pricing", "GET, HEAD, OPTIONS"),
    ],
)
def test_a_wrong_method_is_405_with_allow(
    services_env: Services, method: str, path: str, allow: str
) -> None:
    answer = request(method, path)
    assert_error(answer, 405, "METHOD_NOT_ALLOWED")
    assert set(answer.body) == ERROR_KEYS
    assert answer.headers["Allow"] == allow


def test_options_is_204_with_allow_and_head_is_get_without_a_body(services_env: Services) -> None:
    options = request("OPTIONS", "/admin/users")
    assert options.status == 204 and options.headers["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert options.headers["X-Request-ID"]
    head = request("HEAD", "/health")
    assert head.status == 200 and head.body is None and head.headers["X-Request-ID"]
