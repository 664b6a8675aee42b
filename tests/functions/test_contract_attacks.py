"""The endpoints of the v1 contract commit, attacked as a stranger would: forged and foreign
list cursors, filters that try to reach the Table Storage filter, the vendor client's doors
with bodies of the wrong shape, another user's job ids and backend names that resolve to
retired or other suppliers' devices, the catch-all's odd methods and paths (HEAD included),
and `/legal/{document}` with traversal names. Each answer is a clear 4xx in the standard body
`{detail, error_code, request_id}` with `X-Request-ID`; never a 500, never another user's job.
Routed as the host routes them, against Azurite."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import azure.functions as func
import pytest

from shared.api import fallback, legal, runtime
from shared.errors import ApiError
from shared.http import HANDLERS, handle
from shared.jobs.models import Job, JobStatus
from shared.network.repository import Group, NetworkJob, Slot
from shared.services import Services, services
from shared.suppliers.backends import find, supplier_target
from tests.conftest import Answer, call_http, reset_caches

ERROR_KEYS = {"detail", "error_code", "request_id"}
BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;"
)


def request(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """`method path` as the host routes it: the operation's function with its route
    parameters, else the catch-all with its own (`{*path}`)."""
    url_path = urlsplit(path).path
    template = fallback.allowed(url_path).get(method)
    if template is None:
        params = {"path": url_path.lstrip("/")}
        function: Callable[..., Any] = fallback.fallback
    else:
        given = url_path.strip("/").split("/")
        params = {
            part[1:-1]: unquote(value)  # the host decodes route values
            for part, value in zip(template.strip("/").split("/"), given, strict=False)
            if part.startswith("{")
        }
        function = HANDLERS[(method, template)]
    return call_http(
        function, method, path, body=body, headers=headers, route_params=params, raw=raw
    )


def assert_error(answer: Answer, status: int, code: str) -> None:
    """A clear refusal: `status`, the standard body with `code`, and the request id twice."""
    assert answer.status == status, answer.body
    assert ERROR_KEYS <= set(answer.body), answer.body
    assert answer.body["error_code"] == code, answer.body
    assert answer.body["request_id"] == answer.headers["X-Request-ID"]


def assert_printable(detail: str) -> None:
    assert detail.isprintable(), repr(detail)


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def at(minute: int) -> str:
    return f"2026-03-01T10:{minute:02d}:00.000Z"


def v1_job(user_id: str, job_id: str, minute: int, **fields: Any) -> Job:
    return Job(
        user_id=user_id,
        job_id=job_id,
        status=fields.pop("status", JobStatus.COMPLETED),
        shots=100,
        created_at=at(minute),
        **fields,
    )


def network_job(user_id: str, job_id: str, minute: int, kind: str = "batch") -> NetworkJob:
    return NetworkJob(
        user_id=user_id,
        job_id=job_id,
        status=JobStatus.QUEUED,
        kind=kind,
        strategy="fastest",
        created_at=at(minute),
        groups=[Group(circuit_blob="x.qasm", shots=200)],
        slots=[Slot(group=0, backends=["qiskit_aer"])],
    )


@pytest.fixture
def two_users(services_env: Services, make_user: Callable[..., Any]) -> tuple[Any, Any]:
    """Alice with three v1 jobs and a batch, Bob with two v1 jobs and a batch."""
    alice, bob = make_user("enterprise"), make_user("enterprise")
    jobs, network = services_env.jobs._repo, services_env.network._repo
    for owner, prefix, minutes in ((alice, "alice", (1, 3, 5)), (bob, "bob", (2, 4))):
        for minute in minutes:
            assert jobs.insert(v1_job(owner.user_id, f"{prefix}-{minute}", minute))
        assert network.insert(network_job(owner.user_id, f"{prefix}-batch", 6))
    return alice, bob


def ids(answer: Answer) -> set[str]:
    assert answer.status == 200, answer.body
    return {job["job_id"] for job in answer.body["jobs"]}


ALICES = {"alice-1", "alice-3", "alice-5", "alice-batch"}


# -- GET /api/v1/jobs: cursors --------------------------------------------------------------------

FORGED_CURSORS = {
    "not-base64": "!!!not-a-cursor!!!",
    "base64-not-json": base64.urlsafe_b64encode(b"\xff\xfe garbage").decode(),
    "json-object": cursor({"created_at": at(1), "job_id": "x", "table": "1"}),
    "two-items": cursor([at(1), "x"]),
    "numbers": cursor([1, 2, 3]),
    "nested": cursor([[at(1)], "x", "1"]),
    "null-byte": "%00",
    "lone-surrogate": cursor(["\ud800", "x", "1"]),
    "control-character": cursor([at(1) + "\u0000", "x", "1"]),
    "escape-sequence": cursor([at(1), "\u001b[2J", "1"]),
    "unknown-table": cursor([at(1), "x", "3"]),
    "empty-strings": cursor(["", "", ""]),
    "all-zero-bytes": "A" * 1000,
}


@pytest.mark.parametrize("value", FORGED_CURSORS.values(), ids=FORGED_CURSORS.keys())
def test_a_forged_cursor_is_422_not_a_500(two_users: Any, value: str) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?cursor={quote(value)}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert answer.body["detail"].startswith("cursor:")


def test_an_oversized_cursor_is_422(two_users: Any) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?cursor={'A' * 1001}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert "at most 1000 characters" in answer.body["detail"]


@pytest.mark.parametrize(
    "created_at",
    [
        "9999' or PartitionKey ne '",
        "9999') or (PartitionKey ne 'x",
        "9999'' or true or ''",
        "9999 eq 9999",
    ],
)
def test_a_cursor_cannot_widen_the_storage_filter_to_other_users(
    two_users: Any, created_at: str
) -> None:
    # given a cursor whose time tries to close the OData string and add a clause
    alice, _ = two_users
    forged = cursor([created_at, "zzz", "2"])
    # when Alice lists from it
    answer = request("GET", f"/api/v1/jobs?cursor={forged}&limit=100", headers=alice.headers)
    # then the quote stays inside the literal: her jobs (all before that time), none of Bob's
    assert ids(answer) == ALICES


def test_another_users_cursor_shows_only_your_own_jobs(two_users: Any) -> None:
    # given a cursor Bob's first page gave him (after his job of minute 4)
    alice, bob = two_users
    first = request("GET", "/api/v1/jobs?limit=2", headers=bob.headers)
    assert ids(first) == {"bob-batch", "bob-4"} and first.body["next_cursor"]
    # when Alice sends it
    answer = request(
        "GET", f"/api/v1/jobs?cursor={first.body['next_cursor']}", headers=alice.headers
    )
    # then it is only a position in time: Alice's jobs older than minute 4, never Bob's
    assert ids(answer) == {"alice-1", "alice-3"}


def test_paging_to_the_end_lists_each_own_job_once(two_users: Any) -> None:
    alice, _ = two_users
    seen: list[str] = []
    query = "?limit=1"
    for _ in range(10):
        page = request("GET", f"/api/v1/jobs{query}", headers=alice.headers)
        seen += [job["job_id"] for job in page.body["jobs"]]
        if not page.body["next_cursor"]:
            break
        query = f"?limit=1&cursor={page.body['next_cursor']}"
    assert seen == ["alice-batch", "alice-5", "alice-3", "alice-1"]


# -- GET /api/v1/jobs: limits and filters ---------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1", "101", "1000000000", "abc", "1.5", "1e3", "0x10"])
def test_a_limit_out_of_range_or_not_a_number_is_422(two_users: Any, limit: str) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?limit={quote(limit)}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert answer.body["detail"].startswith("limit:")


@pytest.mark.parametrize(
    "query",
    [
        "status=queued' or '1' eq '1",
        "status=completed or status eq 'queued'",
        "status=COMPLETED",
        "type=job' or 'a' eq 'a",
        "type=jobs",
        "status=" + "q" * 5000,
    ],
)
def test_a_status_or_type_filter_outside_its_values_is_422(two_users: Any, query: str) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?{quote(query, safe='=')}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert answer.body["detail"].split(":")[0] in ("status", "type")


@pytest.mark.parametrize(
    "backend",
    [
        "x' or 'a' eq 'a",
        "qiskit_aer' or PartitionKey ne '",
        "ibm.",
        "no_such_device",
        "ibm.heron",  # a processor family, not a device
        "\u202eqiskit_aer",
        "qiskit_aer\u0000",
    ],
)
def test_an_unknown_backend_filter_is_404_backend_not_found(two_users: Any, backend: str) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?backend={quote(backend)}", headers=alice.headers)
    assert_error(answer, 404, "BACKEND_NOT_FOUND")
    assert_printable(answer.body["detail"])


def test_an_over_long_backend_filter_is_422(two_users: Any) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?backend={'a' * 101}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")


def test_a_backend_filter_under_any_of_its_names_lists_the_same_own_jobs(
    two_users: Any,
) -> None:
    alice, _ = two_users
    answers = [
        ids(request("GET", f"/api/v1/jobs?backend={name}", headers=alice.headers))
        for name in ("qiskit_aer", "AER", "local.aer", "statevector_sim", "Local%20Simulator")
    ]
    assert all(found == ALICES for found in answers)


@pytest.mark.parametrize("query", ["user_id=someone", "owner=x", "limit=5&foo=bar", "$filter=x"])
def test_an_unknown_query_parameter_is_422(two_users: Any, query: str) -> None:
    alice, _ = two_users
    answer = request("GET", f"/api/v1/jobs?{query}", headers=alice.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert "extra_forbidden" in answer.body["detail"]


def test_the_list_needs_a_users_key(two_users: Any, admin_headers: dict[str, str]) -> None:
    assert_error(request("GET", "/api/v1/jobs"), 401, "UNAUTHORIZED")
    wrong = {"X-API-Key": "qcos_" + "x" * 40}
    assert_error(request("GET", "/api/v1/jobs", headers=wrong), 401, "UNAUTHORIZED")
    assert_error(request("GET", "/api/v1/jobs", headers=admin_headers), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runtime/jobs?status=zzz",
        "/api/v1/runtime/jobs?status=queued'%20or%20'1'%20eq%20'1",
        "/api/v2/batch?status=x'",
    ],
)
def test_the_doors_listings_name_the_bad_status(two_users: Any, path: str) -> None:
    alice, _ = two_users
    answer = request("GET", path, headers=alice.headers)
    assert answer.status == 422 and answer.body["error_code"] == "VALIDATION_ERROR"
    assert answer.body["detail"].startswith("status: String should match pattern")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runtime/jobs?cursor=" + cursor(["\ud800", "x", "1"]),
        "/api/v1/runtime/jobs?limit=0",
        "/api/v1/runtime/jobs?backend=qiskit_aer",  # the door's name is backend_id
        "/api/v2/batch?cursor=" + cursor(["\u0000", "x", "2"]),
        "/api/v2/batch?limit=1000",
        "/api/v2/batch?type=job",
    ],
)
def test_the_doors_listings_refuse_what_the_list_refuses(two_users: Any, path: str) -> None:
    alice, _ = two_users
    answer = request("GET", path, headers=alice.headers)
    assert answer.status == 422 and answer.body["error_code"] == "VALIDATION_ERROR", answer.body
    assert answer.body["request_id"] == answer.headers["X-Request-ID"]


def test_the_batch_door_lists_only_your_batches(two_users: Any) -> None:
    alice, _ = two_users
    answer = request("GET", "/api/v2/batch", headers=alice.headers)
    assert answer.status == 200 and answer.body["success"] is True
    assert {job["job_id"] for job in answer.body["data"]["jobs"]} == {"alice-batch"}


# -- the vendor client's doors: bodies -----------------------------------------------------------

BAD_SUBMITS: dict[str, tuple[Any, int, str]] = {
    "array-body": ([BELL], 400, "INVALID_JSON"),
    "string-body": ("qasm", 400, "INVALID_JSON"),
    "no-qasm": ({"shots": 10}, 422, "VALIDATION_ERROR"),
    "empty-qasm": ({"qasm": ""}, 422, "VALIDATION_ERROR"),
    "shots-as-string": ({"qasm": BELL, "shots": "1024"}, 422, "VALIDATION_ERROR"),
    "shots-zero": ({"qasm": BELL, "shots": 0}, 422, "VALIDATION_ERROR"),
    "shots-huge": ({"qasm": BELL, "shots": 10**30}, 422, "VALIDATION_ERROR"),
    "shots-float": ({"qasm": BELL, "shots": 10.5}, 422, "VALIDATION_ERROR"),
    "backend-null": ({"qasm": BELL, "backend_id": None}, 422, "VALIDATION_ERROR"),
    "backend-number": ({"qasm": BELL, "backend_id": 5}, 422, "VALIDATION_ERROR"),
    "backend-empty": ({"qasm": BELL, "backend_id": ""}, 422, "VALIDATION_ERROR"),
    "backend-too-long": ({"qasm": BELL, "backend_id": "a" * 101}, 422, "VALIDATION_ERROR"),
    "unknown-field": ({"qasm": BELL, "backend": "qiskit_aer"}, 422, "VALIDATION_ERROR"),
    "job-id-traversal": ({"qasm": BELL, "job_id": "../../x"}, 422, "VALIDATION_ERROR"),
    "job-id-quote": ({"qasm": BELL, "job_id": "x' or '1' eq '1"}, 422, "VALIDATION_ERROR"),
    "nested-metadata": ({"qasm": BELL, "metadata": {"a": {"b": 1}}}, 422, "VALIDATION_ERROR"),
    "too-many-labels": (
        {
            "qasm": BELL,
            "metadata": {f"m{i}": "x" for i in range(6)},
            "tags": {f"t{i}": "y" for i in range(6)},
        },
        422,
        "VALIDATION_ERROR",
    ),
    "not-qasm": ({"qasm": "rm -rf /"}, 400, "INVALID_QASM"),
}


@pytest.mark.parametrize("case", BAD_SUBMITS.values(), ids=BAD_SUBMITS.keys())
def test_a_bad_runtime_submit_is_refused_and_stores_nothing(
    services_env: Services, make_user: Callable[..., Any], case: tuple[Any, int, str]
) -> None:
    body, status, code = case
    user = make_user("enterprise")
    answer = request("POST", "/api/v1/runtime/jobs", body=body, headers=user.headers)
    assert_error(answer, status, code)
    assert services_env.jobs._repo.count(user.user_id) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"qasm": "x", "shots": 1' + b"0" * 5000 + b"}",  # an integer of 5001 digits
        b'{"qasm": "x", "shots": 1e999999}',
        b"\xff\xfe\x00",
        b'{"qasm": "x"}' * 2,
    ],
    ids=["empty", "truncated", "huge-integer", "huge-exponent", "not-utf8", "two-objects"],
)
def test_a_runtime_submit_that_is_not_one_json_object_is_400(
    services_env: Services, make_user: Callable[..., Any], raw: bytes
) -> None:
    user = make_user("enterprise")
    answer = request("POST", "/api/v1/runtime/jobs", raw=raw, headers=user.headers)
    assert answer.status in (400, 422), answer.body
    assert ERROR_KEYS <= set(answer.body)
    assert services_env.jobs._repo.count(user.user_id) == 0


@pytest.mark.parametrize(
    "backend_id",
    [
        "ionq.harmony",
        "ionq_harmony",
        "IONQ.QPU",
        "quantinuum.h1-1",
        "azure_quantum.quantinuum.qpu.h1-2",
        "rigetti_aspen",
        "braket.rigetti_aspen_m_3",  # an alias of the retired Aspen, under a Braket prefix
    ],
)
def test_a_runtime_submit_to_a_retired_device_is_400_naming_its_successor(
    services_env: Services, make_user: Callable[..., Any], backend_id: str
) -> None:
    user = make_user("enterprise")
    body = {"qasm": BELL, "backend_id": backend_id}
    answer = request("POST", "/api/v1/runtime/jobs", body=body, headers=user.headers)
    assert_error(answer, 400, "BACKEND_RETIRED")
    assert "successor" in answer.body["detail"]
    assert services_env.jobs._repo.count(user.user_id) == 0


@pytest.mark.parametrize(
    "backend_id",
    [
        "ibm.ionq_simulator",  # Azure Quantum's device under IBM's prefix
        "braket.ibm_brisbane",
        "local.ionq_simulator",
        "azure.braket_sv1",
        "ibm.",
        "aws.",
        "ibm.heron",
        "ibm\u200bbrisbane",  # a zero-width space inside
        "ＩＢＭ_brisbane",  # full-width letters
        "x\u0000\u001b[31m\u202e",
    ],
)
def test_a_runtime_submit_to_a_backend_of_no_or_another_supplier_is_404(
    services_env: Services, make_user: Callable[..., Any], backend_id: str
) -> None:
    user = make_user("enterprise")
    body = {"qasm": BELL, "backend_id": backend_id}
    answer = request("POST", "/api/v1/runtime/jobs", body=body, headers=user.headers)
    assert_error(answer, 404, "BACKEND_NOT_FOUND")
    assert_printable(answer.body["detail"])
    assert services_env.jobs._repo.count(user.user_id) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"qasm": BELL, "qubits": -1}, 422, "VALIDATION_ERROR"),
        ({"qasm": BELL, "gates": 1.5}, 422, "VALIDATION_ERROR"),
        ({"qasm": BELL, "qubits": "2"}, 422, "VALIDATION_ERROR"),
        ({"qasm": BELL, "shots": 100_001}, 422, "VALIDATION_ERROR"),
        ({"qasm": BELL, "backend_id": "no_such"}, 404, "BACKEND_NOT_FOUND"),
        ({"qasm": BELL, "backends": ["qiskit_aer"]}, 422, "VALIDATION_ERROR"),
        ({"qasm": "not qasm"}, 400, "INVALID_QASM"),
    ],
)
def test_a_bad_runtime_estimate_is_refused(
    services_env: Services,
    make_user: Callable[..., Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    user = make_user("enterprise")
    answer = request("POST", "/api/v1/runtime/estimate", body=body, headers=user.headers)
    assert_error(answer, status, code)


def test_an_estimate_with_a_huge_declared_size_is_refused_or_ignored(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    huge = ('{"qasm": "x", "qubits": 1' + "0" * 5000 + "}").encode()
    answer = request("POST", "/api/v1/runtime/estimate", raw=huge, headers=user.headers)
    assert_error(answer, 400, "INVALID_JSON")
    # a large but parseable count is accepted and ignored: the circuit is sized from its qasm
    body = {"qasm": BELL, "qubits": 10**15, "gates": 10**15}
    answer = request("POST", "/api/v1/runtime/estimate", body=body, headers=user.headers)
    assert answer.status == 200, answer.body


def test_an_estimate_on_a_retired_device_says_it_does_not_fit(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    body = {"qasm": BELL, "backend_id": "ionq.harmony"}
    answer = request("POST", "/api/v1/runtime/estimate", body=body, headers=user.headers)
    assert answer.status == 200, answer.body
    (only,) = answer.body["backends"]
    assert only["backend"] == "ionq_harmony" and only["fits"] is False
    assert only["status"] == "retired"


# -- the vendor client's doors: another user's jobs -----------------------------------------------


@pytest.fixture
def alices_job(services_env: Services, make_user: Callable[..., Any]) -> tuple[Any, str]:
    alice = make_user("enterprise")
    body = {"qasm": BELL, "backend_id": "qiskit_aer"}
    accepted = request("POST", "/api/v1/runtime/jobs", body=body, headers=alice.headers)
    assert accepted.status == 202, accepted.body
    return alice, accepted.body["job_id"]


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/api/v1/runtime/jobs/{}"),
        ("DELETE", "/api/v1/runtime/jobs/{}"),
        ("GET", "/api/v1/azure_quantum/status/{}"),
        ("DELETE", "/api/v1/ibm_quantum/jobs/{}"),
        ("GET", "/api/v1/status/{}"),
        ("HEAD", "/api/v1/runtime/jobs/{}"),
    ],
)
def test_another_users_job_id_is_404_and_the_job_is_untouched(
    services_env: Services,
    make_user: Callable[..., Any],
    alices_job: tuple[Any, str],
    method: str,
    template: str,
) -> None:
    alice, job_id = alices_job
    mallory = make_user("enterprise")
    answer = request(method, template.format(job_id), headers=mallory.headers)
    assert answer.status == 404, answer.body
    if method != "HEAD":
        assert_error(answer, 404, "JOB_NOT_FOUND")
        assert "X-Request-ID" in answer.headers
    # Alice's job is still hers, still queued
    mine = request("GET", f"/api/v1/runtime/jobs/{job_id}", headers=alice.headers)
    assert mine.status == 200 and mine.body["status"] == "queued"
    listed = request("GET", "/api/v1/jobs", headers=mallory.headers)
    assert ids(listed) == set()


def sdk_batch_without_engine(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/v2/batch through the request pipeline, as the door converts it; a refused
    batch never reaches the durable client, so none is given."""

    def submit(ctx: Any) -> Any:
        batch = ctx.body.as_batch()
        return runtime._batch_accepted(services().network.execute_batch(ctx.user, batch, None))

    return handle(req, runtime.BATCH_SUBMIT, submit)


def sdk_cancel_without_engine(req: func.HttpRequest) -> func.HttpResponse:
    def cancel(ctx: Any) -> Any:
        return services().network.cancel(ctx.user, ctx.params["job_id"], None)

    return handle(req, runtime.BATCH_CANCEL, cancel)


def test_another_users_batch_is_404_in_the_v2_envelope(two_users: Any) -> None:
    alice, bob = two_users
    for path in ("/api/v2/batch/alice-batch", "/api/v2/batch/alice-batch/results"):
        answer = request("GET", path, headers=bob.headers)
        assert_error(answer, 404, "JOB_NOT_FOUND")
        assert answer.body["success"] is False
    cancel = call_http(
        sdk_cancel_without_engine,
        "POST",
        "/api/v2/batch/alice-batch/cancel",
        headers=bob.headers,
        route_params={"job_id": "alice-batch"},
    )
    assert_error(cancel, 404, "JOB_NOT_FOUND")
    mine = request("GET", "/api/v2/batch/alice-batch", headers=alice.headers)
    assert mine.status == 200 and mine.body["data"]["status"] == "queued"


@pytest.mark.parametrize(
    ("jobs", "status", "code"),
    [
        ([], 422, "VALIDATION_ERROR"),
        ([{"circuit": BELL, "backend": "qiskit_aer", "shots": 0}], 422, "VALIDATION_ERROR"),
        ([{"circuit": BELL, "backend": "no_such"}], 404, "BACKEND_NOT_FOUND"),
        ([{"circuit": BELL, "backend": "ibm."}], 404, "BACKEND_NOT_FOUND"),
        (
            [
                {"circuit": BELL, "backend": "qiskit_aer"},
                {"circuit": BELL, "backend": "ionq.simulator"},
            ],
            422,
            "VALIDATION_ERROR",
        ),
        ([{"circuit": BELL, "backend": "qiskit_aer"}] * 101, 422, "VALIDATION_ERROR"),
        ([{"circuit": "nope", "backend": "qiskit_aer"}], 400, "INVALID_QASM"),
    ],
    ids=["none", "zero-shots", "unknown", "ibm-empty", "two-backends", "too-many", "not-qasm"],
)
def test_a_bad_sdk_batch_is_refused_in_the_v2_envelope(
    services_env: Services,
    make_user: Callable[..., Any],
    jobs: list[dict[str, Any]],
    status: int,
    code: str,
) -> None:
    user = make_user("enterprise")
    answer = call_http(
        sdk_batch_without_engine, "POST", "/api/v2/batch", body={"jobs": jobs}, headers=user.headers
    )
    assert_error(answer, status, code)
    assert answer.body["success"] is False
    assert ids(request("GET", "/api/v1/jobs", headers=user.headers)) == set()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/no_such/status/x"), ("DELETE", "/api/v1/no_such/jobs/x")],
)
def test_an_unknown_supplier_is_404_supplier_not_found(
    services_env: Services, make_user: Callable[..., Any], method: str, path: str
) -> None:
    user = make_user("enterprise")
    assert_error(request(method, path, headers=user.headers), 404, "SUPPLIER_NOT_FOUND")


def test_a_supplier_or_job_id_with_control_characters_is_not_echoed_raw(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    evil = "a\u001b[31m\u202e\u0000'"
    supplier = call_http(
        runtime.sdk_supplier_status,
        "GET",
        "/api/v1/x/status/y",
        headers=user.headers,
        route_params={"supplier": evil, "job_id": "y"},
    )
    assert_error(supplier, 404, "SUPPLIER_NOT_FOUND")
    job = call_http(
        runtime.sdk_job,
        "GET",
        "/api/v1/runtime/jobs/y",
        headers=user.headers,
        route_params={"job_id": evil},
    )
    assert_error(job, 404, "JOB_NOT_FOUND")
    backend = call_http(
        runtime.sdk_backend,
        "GET",
        "/api/v1/backends/y",
        headers=user.headers,
        route_params={"backend_id": "\ud800" + evil},
    )
    assert_error(backend, 404, "BACKEND_NOT_FOUND")
    for answer in (supplier, job, backend):
        assert_printable(answer.body["detail"])


# -- backends and the network under /api/v1 -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ibm_brisbane",
        "IBM_BRISBANE",
        "ibm-brisbane",
        "ibm%20brisbane",
        "ibm.brisbane",
        "ibm_quantum.ibm_brisbane",
        "ibmq.brisbane",
        "ibm..brisbane",
        "%20ibm_brisbane%20",
    ],
)
def test_names_that_normalise_to_one_backend_answer_that_backend(
    services_env: Services, make_user: Callable[..., Any], name: str
) -> None:
    user = make_user()
    answer = request("GET", f"/api/v1/backends/{name}", headers=user.headers)
    assert answer.status == 200 and answer.body["id"] == "ibm_brisbane", answer.body


@pytest.mark.parametrize(
    "name",
    ["ibm.", "ibm", ".", "%2e%2e", "..%2f..%2fadmin", "ibm.heron", "\u0130" * 300, "a" * 5000],
)
def test_an_unknown_backend_is_404_with_a_short_printable_detail(
    services_env: Services, make_user: Callable[..., Any], name: str
) -> None:
    user = make_user()
    answer = call_http(
        runtime.sdk_backend,
        "GET",
        "/api/v1/backends/x",
        headers=user.headers,
        route_params={"backend_id": name},
    )
    assert_error(answer, 404, "BACKEND_NOT_FOUND")
    assert_printable(answer.body["detail"])
    assert len(answer.body["detail"]) < 1000


def test_a_retired_backend_is_shown_as_retired_with_its_successor(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user()
    answer = request("GET", "/api/v1/backends/ionq.harmony", headers=user.headers)
    assert answer.status == 200 and answer.body["status"] == "retired"
    assert answer.body["successor"] == "ionq_qpu_aria_1"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/backends",
        "/api/v1/backends/qiskit_aer",
        "/api/v1/runtime/backends",
        "/api/v1/network/status",
        "/api/v1/network/topology",
        "/api/v1/network/backends",
        "/api/v1/runtime/jobs",
        "/api/v1/runtime/jobs/x",
    ],
)
def test_the_doors_need_an_api_key(services_env: Services, path: str) -> None:
    assert_error(request("GET", path), 401, "UNAUTHORIZED")
    wrong = {"Authorization": "Bearer qcos_" + "z" * 40}
    assert_error(request("GET", path, headers=wrong), 401, "UNAUTHORIZED")


# -- backend names (shared/suppliers/backends.py) -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", " ", ".", "ibm.", "aws.", "local.", "ibm\u200bbrisbane", "\u001b[2J", "x" * 100_000],
)
def test_find_refuses_odd_names_with_a_printable_bounded_detail(name: str) -> None:
    with pytest.raises(ApiError) as raised:
        find(name)
    error = raised.value
    assert error.error_code == "BACKEND_NOT_FOUND"
    assert error.detail.isprintable() and len(error.detail) < 400


@pytest.mark.parametrize(
    ("supplier", "name", "code"),
    [
        ("ibm_quantum", "ibm.", "BACKEND_NOT_FOUND"),
        ("ibm_quantum", "", "BACKEND_NOT_FOUND"),
        ("ibm_quantum", "ionq.harmony", "BACKEND_NOT_FOUND"),  # retired, and not IBM's
        ("braket", "ionq.simulator", "BACKEND_NOT_FOUND"),
        ("ibm_quantum", "local", "BACKEND_NOT_FOUND"),
        ("ibm_quantum", "\u0000\u001b", "BACKEND_NOT_FOUND"),
        ("azure_quantum", "ionq.harmony", "BACKEND_RETIRED"),
        ("azure_quantum", "quantinuum.h1-2", "BACKEND_RETIRED"),
        ("azure_quantum", "rigetti.qpu.aspen-m-3", "BACKEND_RETIRED"),
    ],
)
def test_supplier_target_refuses_other_suppliers_and_retired_devices(
    supplier: str, name: str, code: str
) -> None:
    with pytest.raises(ApiError) as raised:
        supplier_target(supplier, name)
    assert raised.value.error_code == code
    assert raised.value.detail.isprintable()


# -- the ledger doors -----------------------------------------------------------------------------

LEDGER_DOORS = [
    ("GET", "/api/v1/ledger/reports/usage", None),
    ("POST", "/api/v1/ledger/reports/chargeback", None),
    ("POST", "/api/v1/ledger/budgets", {"limit_usd": 5}),
    ("POST", "/api/v1/ledger/budgets", {"limit_usd": 5, "project_id": "p1"}),
    ("POST", "/api/v1/ledger/budgets", {"limit_usd": 5, "tenant_id": "acme"}),
]


@pytest.mark.parametrize("tier", ["free", "professional"])
@pytest.mark.parametrize("tenant", ["", "acme"])
@pytest.mark.parametrize(("method", "path", "body"), LEDGER_DOORS)
def test_the_ledger_doors_are_403_for_a_non_enterprise_key(
    services_env: Services,
    make_user: Callable[..., Any],
    tier: str,
    tenant: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    user = make_user(tier, tenant=tenant)
    answer = request(method, path, body=body, headers=user.headers)
    assert_error(answer, 403, "LEDGER_FORBIDDEN")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/ledger/reports/usage?tenant_id=globex", None),
        ("POST", "/api/v1/ledger/reports/chargeback?tenant_id=globex", None),
        ("POST", "/api/v1/ledger/budgets", {"limit_usd": 5, "tenant_id": "globex"}),
    ],
)
def test_the_ledger_doors_refuse_another_tenant(
    services_env: Services,
    make_user: Callable[..., Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    user = make_user("enterprise", tenant="acme")
    answer = request(method, path, body=body, headers=user.headers)
    assert_error(answer, 403, "LEDGER_FORBIDDEN")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/ledger/reports/usage?tenant_id=acme'%20or%20'a'%20eq%20'a",
        "/api/v1/ledger/reports/usage?start_date=garbage",
        "/api/v1/ledger/reports/usage?start_date=2026-13-45",
        "/api/v1/ledger/reports/usage?end_date=2026-01-01T00:00:00",  # no time zone
        "/api/v1/ledger/reports/usage?user=x",
    ],
)
def test_a_bad_ledger_query_is_422(
    services_env: Services, make_user: Callable[..., Any], path: str
) -> None:
    user = make_user("enterprise", tenant="acme")
    assert_error(request("GET", path, headers=user.headers), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [
        {"limit_usd": -1},
        {"limit_usd": "1e10"},
        {"limit_usd": "NaN"},
        {"limit_usd": "Infinity"},
        {"limit_usd": 1.234},
        {"limit_usd": True},
        {"limit_usd": 5, "period": "yearly"},
        {"limit_usd": 5, "project_id": "p' or '1' eq '1"},
        {"limit_usd": 5, "tenant_id": ""},
        {"limit_usd": 5, "currency": "EUR"},
        {"period": "daily"},
    ],
)
def test_a_bad_budget_is_422_and_sets_nothing(
    services_env: Services, make_user: Callable[..., Any], body: dict[str, Any]
) -> None:
    user = make_user("enterprise", tenant="acme")
    answer = request("POST", "/api/v1/ledger/budgets", body=body, headers=user.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")


def test_a_project_filter_with_odata_characters_finds_nothing(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    user = make_user("enterprise", tenant="acme")
    path = "/api/v1/ledger/reports/usage?project_id=x'%20or%20'1'%20eq%20'1"
    answer = request("GET", path, headers=user.headers)
    assert answer.status == 200 and answer.body["entries"] == []


# -- the catch-all --------------------------------------------------------------------------------

UNKNOWN_PATHS = [
    "/api/v1/../admin/users",
    "/api/v1/%2e%2e/admin/users",
    "/api/v1/%2E%2E/%2E%2E/etc/passwd",
    "/api/v1/jobs/../../admin",
    "/" + "a/" * 4000,
    "/" + "x" * 20_000,
    "/%00",
    "/a%0d%0aSet-Cookie:%20x=1",
    "/api/v1/network/nope",
    "/api/v1/ledger/reports",
    "/api/v1/chemistry/run",
    "/api/v1/marketplace",
]


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "OPTIONS", "PROPFIND"])
@pytest.mark.parametrize("path", UNKNOWN_PATHS, ids=range(len(UNKNOWN_PATHS)))
def test_an_unknown_path_is_the_standard_404_under_any_method(
    services_env: Services, method: str, path: str
) -> None:
    answer = request(method, path)
    assert_error(answer, 404, "NOT_FOUND")
    assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/jobs", "GET, HEAD, OPTIONS"),
        ("DELETE", "/api/v1/jobs/", "GET, HEAD, OPTIONS"),
        ("PATCH", "/API/V1/JOBS", "GET, HEAD, OPTIONS"),
        ("TRACE", "/health", "GET, HEAD, OPTIONS"),
        ("CONNECT", "/legal/eula", "GET, HEAD, OPTIONS"),
        ("FOO", "/api/v1/runtime/estimate", "POST, OPTIONS"),
        ("GET", "/api/v2/batch/x/cancel", "POST, OPTIONS"),
        ("HEAD", "/api/v1/execute", "POST, OPTIONS"),
        ("HEAD", "/api/v1/runtime/estimate", "POST, OPTIONS"),
        ("HEAD", "/api/v1/ledger/reports/chargeback", "POST, OPTIONS"),
        ("HEAD", "/api/v2/batch/x/cancel", "POST, OPTIONS"),
    ],
)
def test_a_wrong_method_is_405_with_allow(
    services_env: Services, make_user: Callable[..., Any], method: str, path: str, allow: str
) -> None:
    user = make_user("enterprise", tenant="acme")
    answer = request(method, path, headers=user.headers, body={"limit_usd": 5})
    assert_error(answer, 405, "METHOD_NOT_ALLOWED")
    assert answer.headers["Allow"] == allow
    # no POST handler ran: no job, no budget
    assert services_env.jobs._repo.count(user.user_id) == 0
    usage = request("GET", "/api/v1/ledger/reports/usage", headers=user.headers)
    assert usage.body["entries"] == []


def test_the_v2_catch_all_answers_in_the_v2_envelope(services_env: Services) -> None:
    attempts = (("GET", "/api/v2/nope"), ("POST", "/API/V2/NOPE"), ("PUT", "/api/v2/batch"))
    for method, path in attempts:
        answer = request(method, path)
        assert answer.body["success"] is False and answer.status in (404, 405)
        assert answer.body["request_id"] == answer.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs",
        "/api/v1/runtime/jobs/x",
        "/api/v1/ibm_quantum/status/x",
        "/api/v1/backends/qiskit_aer",
        "/api/v2/batch/x",
        "/api/v2/batch/x/results",
        "/legal/eula",
        "/legal/..%2fLICENSE",
    ],
)
def test_head_answers_as_get_does_without_a_body(
    services_env: Services, make_user: Callable[..., Any], path: str
) -> None:
    user = make_user("enterprise")
    get = request("GET", path, headers=user.headers)
    head = request("HEAD", path, headers=user.headers)
    assert get.status < 500 and head.status == get.status, (get.body, head.body)
    assert head.body in (None, "")
    assert head.headers["X-Request-ID"]
    assert (
        head.headers.get("Content-Type", "").split(";")[0]
        == (get.headers.get("Content-Type", "").split(";")[0])
    )


def test_head_on_a_door_with_a_key_of_nobody_is_401(services_env: Services) -> None:
    head = request("HEAD", "/api/v1/runtime/jobs/x", headers={"X-API-Key": "qcos_nobody"})
    assert head.status == 401 and head.body is None
    assert head.headers["X-Request-ID"] and head.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/jobs", "GET, HEAD, OPTIONS"),
        ("/api/v1/runtime/jobs", "GET, POST, HEAD, OPTIONS"),
        ("/api/v1/runtime/jobs/x", "DELETE, GET, HEAD, OPTIONS"),
        ("/api/v2/batch", "GET, POST, HEAD, OPTIONS"),
        ("/legal/anything", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_is_204_with_allow_and_a_request_id(
    services_env: Services, path: str, allow: str
) -> None:
    answer = request("OPTIONS", path)
    assert answer.status == 204 and answer.headers["Allow"] == allow
    assert answer.headers["X-Request-ID"]


# -- /legal/{document} ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../LICENSE",
        "..%2fLICENSE",
        "%2e%2e%2fLICENSE",
        "..\\LICENSE",
        "/etc/passwd",
        "texts/eula",
        "eula.md",
        "EULA",
        "license\u0000",
        " license",
        "",
        "x" * 10_000,
        "\u202eesnecil",
    ],
)
def test_a_document_name_not_listed_is_404_and_never_echoed(
    services_env: Services, name: str
) -> None:
    answer = call_http(legal.legal_document, "GET", "/legal/x", route_params={"document": name})
    assert_error(answer, 404, "DOCUMENT_NOT_FOUND")
    assert answer.body["detail"] == "Unknown legal document"


@pytest.mark.parametrize("setting", ["missing", "directory", "relative-missing"])
def test_a_configured_document_that_cannot_be_read_is_404(
    services_env: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str
) -> None:
    where = {
        "missing": str(tmp_path / "missing.md"),
        "directory": str(tmp_path),
        "relative-missing": "no/such/terms.md",
    }[setting]
    monkeypatch.setenv("QCOS_LEGAL_TERMS_FILE", where)
    reset_caches()
    answer = request("GET", "/legal/terms")
    assert_error(answer, 404, "DOCUMENT_NOT_FOUND")
    assert str(tmp_path) not in answer.body["detail"]  # the server's paths stay private
    # the other documents and the index still answer
    assert request("GET", "/legal/eula").status == 200
    assert request("GET", "/legal").status == 200


def test_a_huge_job_id_is_404_with_a_bounded_detail(
    services_env: Services, make_user: Callable[..., Any]
) -> None:
    # when a job id of 5000 characters is asked for
    answer = call_http(
        runtime.sdk_job,
        "GET",
        "/api/v1/runtime/jobs/x",
        headers=make_user("enterprise").headers,
        route_params={"job_id": "a" * 5000},
    )
    # then it is not found, and the detail quotes only the start of it
    assert_error(answer, 404, "JOB_NOT_FOUND")
    assert len(answer.body["detail"]) < 200
