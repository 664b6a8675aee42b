"""What every request meets first: keys, the error body, request ids, sizes and unknown fields."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from shared.api import accounts, jobs, ledger, network, rerank, suppliers
from shared.errors import ApiError, InvalidQasm, one_line
from shared.http import Operation, handle
from shared.services import Services
from tests.circuits import BELL

ADMIN = {"X-API-Key": "qcos_admin_" + "t" * 40}
ERROR_KEYS = {"detail", "error_code", "request_id"}


def assert_error(answer: Any, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert set(answer.body) == ERROR_KEYS
    assert answer.body["error_code"] == code
    assert answer.body["request_id"] == answer.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": "qcos_0123456789abcdef_" + "A" * 43},  # well formed, unknown
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer qcos_0123456789abcdef_" + "A" * 43},
    ],
)
def test_missing_malformed_and_unknown_keys_all_get_the_same_401(
    services_env: Services, http: Callable[..., Any], headers: dict[str, str]
) -> None:
    answer = http(jobs.execute, "POST", "/api/v1/execute", body={"qasm": BELL}, headers=headers)
    assert_error(answer, 401, "UNAUTHORIZED")
    assert answer.body["detail"] == "A valid API key is required"


def test_a_key_with_a_known_public_id_but_a_wrong_secret_is_401(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    forged = user.api_key[:-4] + ("AAAA" if not user.api_key.endswith("AAAA") else "BBBB")
    answer = http(jobs.execute, "POST", "/", body={"qasm": BELL}, headers={"X-API-Key": forged})
    assert_error(answer, 401, "UNAUTHORIZED")


def test_a_bearer_token_works_like_the_api_key_header(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    answer = http(
        jobs.execute,
        "POST",
        "/",
        body={"qasm": BELL},
        headers={"Authorization": f"Bearer {user.api_key}"},
    )
    assert answer.status == 202


def test_unknown_fields_are_rejected_so_nobody_sets_status_or_owner(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    body = {"qasm": BELL, "status": "completed", "user_id": "someone-else"}
    answer = http(jobs.execute, "POST", "/", body=body, headers=user.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert "status" in answer.body["detail"] and "extra_forbidden" in answer.body["detail"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "INVALID_JSON"),
        (b"{not json", 400, "INVALID_JSON"),
        (b"[1, 2]", 400, "INVALID_JSON"),
        (b'{"shots": 5}', 422, "VALIDATION_ERROR"),
        (b'{"qasm": "x", "shots": 0}', 422, "VALIDATION_ERROR"),
        (b'{"qasm": "x", "shots": 100001}', 422, "VALIDATION_ERROR"),
        (b'{"qasm": "x", "job_id": "has space"}', 422, "VALIDATION_ERROR"),
        (b'{"qasm": "x", "job_id": "' + b"a" * 65 + b'"}', 422, "VALIDATION_ERROR"),
    ],
)
def test_bad_bodies_get_the_standard_error(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    raw: bytes,
    status: int,
    code: str,
) -> None:
    user = make_user()
    answer = http(jobs.execute, "POST", "/", raw=raw, headers=user.headers)
    assert_error(answer, status, code)


def test_a_body_over_the_cap_is_413_before_anything_else(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # no key at all: the size is checked first
    raw = b'{"qasm": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    answer = http(jobs.execute, "POST", "/", raw=raw, headers={})
    assert_error(answer, 413, "PAYLOAD_TOO_LARGE")


def test_shots_over_the_tier_limit_are_400_naming_the_limit(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("free")  # 1024 shots
    answer = http(
        jobs.execute, "POST", "/", body={"qasm": BELL, "shots": 1025}, headers=user.headers
    )
    assert_error(answer, 400, "SHOT_LIMIT_EXCEEDED")


def test_qubits_over_the_tier_limit_are_400_naming_the_limit(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("free")  # 20 qubits
    qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[21];\nh q[0];\n'
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "QUBIT_LIMIT_EXCEEDED")


def test_an_include_of_a_server_file_is_refused(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    qasm = 'OPENQASM 2.0;\ninclude "/etc/passwd";\nqreg q[1];\n'
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "INCLUDE_NOT_ALLOWED")
    assert "root:" not in answer.body["detail"]


def test_invalid_qasm_names_line_and_column(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0]\ncx q[0],q[1];\n'
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "INVALID_QASM")
    assert "line 5" in answer.body["detail"] and "column" in answer.body["detail"]


def test_a_sensible_incoming_request_id_is_kept_and_a_new_one_made_otherwise(
    services_env: Services, http: Callable[..., Any]
) -> None:
    kept = http(jobs.execute, "POST", "/", body={}, headers={"X-Request-ID": "trace-12345678"})
    assert kept.headers["X-Request-ID"] == "trace-12345678"
    made = http(jobs.execute, "POST", "/", body={}, headers={"X-Request-ID": "<script>"})
    assert made.headers["X-Request-ID"] != "<script>" and len(made.headers["X-Request-ID"]) == 32


def test_the_admin_creates_a_user_whose_key_is_shown_once_and_never_again(
    services_env: Services, http: Callable[..., Any]
) -> None:
    created = http(
        accounts.create_user,
        "POST",
        "/admin/users",
        body={"email": "grace@example.com", "tier": "enterprise"},
        headers=ADMIN,
    )
    assert created.status == 201
    assert created.body["tier"] == "enterprise"
    key = created.body["api_key"]
    assert key.startswith("qcos_") and len(key) >= 60
    user_id = created.body["user_id"]
    shown = http(accounts.get_user, "GET", "/", headers=ADMIN, route_params={"user_id": user_id})
    assert shown.status == 200 and shown.body["email"] == "grace@example.com"
    for unknown in ("u_0000000000000000", "x" * 2000, "it's"):
        missing = http(
            accounts.get_user, "GET", "/", headers=ADMIN, route_params={"user_id": unknown}
        )
        assert_error(missing, 404, "USER_NOT_FOUND")
    assert key not in str(shown.body) and "key" not in " ".join(shown.body)
    # the key is stored only as a hash
    rows = list(services_env.storage.table("apikeys").list_entities())
    assert all(key not in str(dict(row)) for row in rows)
    me = http(accounts.me, "GET", "/user/me", headers={"X-API-Key": key})
    assert me.status == 200
    assert me.body["user_id"] == user_id
    assert me.body["daily_job_limit"] == "unlimited" and me.body["max_qubits"] == 127
    assert me.body["max_shots"] == 100_000 and me.body["jobs_today"] == 0


def test_the_admin_api_answers_under_api_v1_too_where_azure_keeps_admin_for_itself(
    services_env: Services, http: Callable[..., Any]
) -> None:
    # when the admin creates a user, reads it and issues a key through the /api/v1 doors
    created = http(
        accounts.v1_create_user,
        "POST",
        "/api/v1/admin/users",
        body={"email": "hedy@example.com", "tier": "professional"},
        headers=ADMIN,
    )
    assert created.status == 201, created.body
    user_id = created.body["user_id"]
    shown = http(accounts.v1_get_user, "GET", "/", headers=ADMIN, route_params={"user_id": user_id})
    issued = http(
        accounts.v1_issue_key, "POST", "/", headers=ADMIN, route_params={"user_id": user_id}
    )
    # then they are the same operations: the same user, and both keys work
    assert shown.status == 200 and shown.body["email"] == "hedy@example.com"
    assert issued.status == 201
    for key in (created.body["api_key"], issued.body["api_key"]):
        me = http(accounts.me, "GET", "/user/me", headers={"X-API-Key": key})
        assert me.status == 200 and me.body["user_id"] == user_id
    # and a user's key is refused there as on /admin
    refused = http(
        accounts.v1_list_users, "GET", "/", headers={"X-API-Key": created.body["api_key"]}
    )
    assert_error(refused, 403, "FORBIDDEN")


def test_an_email_is_one_user(services_env: Services, http: Callable[..., Any]) -> None:
    body = {"email": "twice@example.com"}
    http(accounts.create_user, "POST", "/admin/users", body=body, headers=ADMIN)
    again = http(accounts.create_user, "POST", "/admin/users", body=body, headers=ADMIN)
    assert_error(again, 409, "EMAIL_EXISTS")


def test_admin_routes_with_a_user_key_are_403_and_user_routes_with_the_admin_key_too(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    answer = http(
        accounts.create_user, "POST", "/", body={"email": "x@example.com"}, headers=user.headers
    )
    assert_error(answer, 403, "FORBIDDEN")
    answer = http(jobs.execute, "POST", "/", body={"qasm": BELL}, headers=ADMIN)
    assert_error(answer, 403, "FORBIDDEN")


def test_user_me_counts_jobs_today_and_in_total(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("free")
    for _ in range(2):
        http(jobs.execute, "POST", "/", body={"qasm": BELL}, headers=user.headers)
    me = http(accounts.me, "GET", "/user/me", headers=user.headers)
    assert me.body["tier"] == "free" and me.body["daily_job_limit"] == 10
    assert me.body["max_qubits"] == 20 and me.body["max_shots"] == 1024
    assert me.body["jobs_today"] == 2 and me.body["jobs_total"] == 2


def test_a_revoked_key_gets_the_same_401_as_an_unknown_one(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    from shared.accounts import keys

    user = make_user()
    key_id = keys.public_id(user.api_key)
    table = services_env.storage.table("apikeys")
    row = table.get_entity(key_id, "key")
    row["revoked"] = True
    table.update_entity(row)
    answer = http(jobs.execute, "POST", "/", body={"qasm": BELL}, headers=user.headers)
    assert_error(answer, 401, "UNAUTHORIZED")
    assert answer.body["detail"] == "A valid API key is required"


def test_a_circuit_over_the_byte_limit_is_413_before_it_is_parsed(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    qasm = BELL + "// padding\n" * 30_000  # about 330 KB, over the 256 KiB default
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 413, "CIRCUIT_TOO_LARGE")


def test_a_huge_register_is_refused_from_the_source_without_parsing(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[10000000];\n'
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "QUBIT_LIMIT_EXCEEDED")


def test_nested_gate_definitions_that_expand_too_far_are_refused(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("enterprise")
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', "gate g0 a { x a; x a; x a; x a; }"]
    for level in range(1, 20):
        body = " ".join(f"g{level - 1} a;" for _ in range(4))
        lines.append(f"gate g{level} a {{ {body} }}")
    lines += ["qreg q[1];", "g19 q[0];"]
    answer = http(jobs.execute, "POST", "/", body={"qasm": "\n".join(lines)}, headers=user.headers)
    assert_error(answer, 400, "OPERATION_LIMIT_EXCEEDED")


def test_a_run_estimated_past_the_time_limit_is_refused_at_submit(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # about 120 bytes: every shot re-runs 960,000 statevector operations on 20 qubits (days)
    user = make_user("free")
    qasm = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[20] q;\nbit[20] c;\n'
        "for int i in [0:23999] { h q; t q; }\nc = measure q;\n"
    )
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "RUN_TIME_LIMIT_EXCEEDED")


def test_a_non_clifford_circuit_wider_than_the_simulators_can_run_is_refused_at_submit(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user("enterprise")  # 127 qubits allowed; MPS runs at most 63
    qasm = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[64];\ncreg c[64];\nt q;\nmeasure q -> c;\n'
    answer = http(jobs.execute, "POST", "/", body={"qasm": qasm}, headers=user.headers)
    assert_error(answer, 400, "SIMULATION_FAILED")
    assert "63" in answer.body["detail"]


# -- JSON types are strict -------------------------------------------------------------------------


def _network(op: Operation) -> Callable[[Any], Any]:
    """A v2 operation that starts an orchestration (its function takes a durable client
    binding): its request through the pipeline its function runs, up to the call."""

    def call(ctx: Any) -> Any:
        raise AssertionError("a refused body never reaches the call")

    return lambda req: handle(req, op, call)


AGGREGATE = {"results": [{"backend": "a", "counts": {"00": 5}}]}
RERANK = {"query": "reset password", "candidates": ["one text", "another text"], "k": 1}
V2 = "/api/v2/network"


@pytest.mark.parametrize(
    ("fn", "path", "body", "loc", "type_"),
    [
        (jobs.execute, "/api/v1/execute", {"qasm": BELL, "shots": True}, "shots", "int_type"),
        (jobs.execute, "/api/v1/execute", {"qasm": BELL, "shots": "77"}, "shots", "int_type"),
        (jobs.execute, "/api/v1/execute", {"qasm": BELL, "shots": 77.0}, "shots", "int_type"),
        (jobs.execute_sync, "/execute-sync", {"qasm": BELL, "shots": "77"}, "shots", "int_type"),
        (
            suppliers.supplier_execute,
            "/api/v1/braket/execute",
            {"qasm": BELL, "device": "sv1", "shots": True},
            "shots",
            "int_type",
        ),
        (
            _network(network.EXECUTE),
            f"{V2}/execute",
            {"qasm": BELL, "shots": "77"},
            "shots",
            "int_type",
        ),
        (
            _network(network.EXECUTE),
            f"{V2}/execute",
            {"qasm": BELL, "aggregate": 1},
            "aggregate",
            "bool_type",
        ),
        (
            _network(network.EXECUTE),
            f"{V2}/execute",
            {"qasm": BELL, "min_confidence": "0.77"},
            "min_confidence",
            "float_type",
        ),
        (
            _network(network.BATCH),
            f"{V2}/batch",
            {"circuits": [{"qasm": BELL, "shots": True}]},
            "circuits.0.shots",
            "int_type",
        ),
        (
            _network(network.BATCH),
            f"{V2}/batch",
            {"circuits": [{"qasm": BELL}], "aggregate": "true"},
            "aggregate",
            "bool_type",
        ),
        (
            network.network_aggregate,
            f"{V2}/aggregate",
            {"results": [{"backend": "a", "counts": {"00": True}}]},
            "results.0.counts.00",
            "int_type",
        ),
        (
            network.network_aggregate,
            f"{V2}/aggregate",
            {"results": [{"backend": "a", "counts": {"00": 5}, "weight": "0.77"}]},
            "results.0.weight",
            "float_type",
        ),
        (
            network.network_aggregate,
            f"{V2}/aggregate",
            AGGREGATE | {"shots": True},
            "shots",
            "int_type",
        ),
        (
            network.network_estimate,
            f"{V2}/estimate",
            {"qasm": BELL, "shots": "77"},
            "shots",
            "int_type",
        ),
        (rerank.rerank, "/rerank", RERANK | {"k": True}, "k", "int_type"),
        (rerank.rerank, "/rerank", RERANK | {"max_iters": "77"}, "max_iters", "int_type"),
        (rerank.rerank, "/rerank", RERANK | {"diversity": "0.77"}, "diversity", "float_type"),
        (
            ledger.ledger_put_budget,
            "/api/v1/ledger/budgets/project:p",
            {"period": "monthly", "limit": True},
            "limit",
            "decimal_type",
        ),
    ],
)
def test_a_bool_or_a_string_where_a_number_belongs_is_refused_without_echoing_it(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    fn: Callable[..., Any],
    path: str,
    body: dict[str, Any],
    loc: str,
    type_: str,
) -> None:
    # given a user (allowed every endpoint here) and a body with one value of the wrong JSON type
    user = make_user("enterprise", "acme")
    # when it is sent
    answer = http(
        fn,
        "POST",
        path,
        body=body,
        headers=user.headers,
        route_params={"supplier": "braket", "scope": "project:p"},
    )
    # then it is refused as invalid, naming the field and the type, without the value
    assert answer.status == 422, answer.body
    assert (
        {"detail", "error_code", "request_id"}
        <= set(answer.body)
        <= {"detail", "error_code", "request_id", "success"}
    )
    assert answer.body["error_code"] == "VALIDATION_ERROR"
    assert f"{loc}: " in answer.body["detail"] and f"({type_})" in answer.body["detail"]
    assert "77" not in answer.body["detail"] and "rue" not in answer.body["detail"]


def test_values_json_has_no_type_for_still_come_as_strings(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    # an enum (tier, period) and a decimal ("500.00", as the reference writes it) are strings
    made = http(
        accounts.create_user,
        "POST",
        "/admin/users",
        body={
            "email": f"strict-{uuid.uuid4().hex[:8]}@example.com",
            "tier": "enterprise",
            "tenant": "acme",
        },
        headers=ADMIN,
    )
    assert made.status == 201, made.body
    user = {"X-API-Key": made.body["api_key"]}
    budget = http(
        ledger.ledger_put_budget,
        "PUT",
        "/api/v1/ledger/budgets/project:strict",
        body={"period": "monthly", "limit": "500.00"},
        headers=user,
        route_params={"scope": "project:strict"},
    )
    assert budget.status == 200, budget.body
    assert (budget.body["period"], budget.body["limit"]) == ("monthly", "500.00")
    # and a number is a number, an integer where a float is expected included
    numeric = http(
        ledger.ledger_put_budget,
        "PUT",
        "/api/v1/ledger/budgets/project:strict",
        body={"period": "daily", "limit": 20},
        headers=user,
        route_params={"scope": "project:strict"},
    )
    assert numeric.status == 200, numeric.body
    merged = http(
        network.network_aggregate,
        "POST",
        f"{V2}/aggregate",
        body={"results": [{"backend": "a", "counts": {"00": 5}, "weight": 1}], "shots": 10},
        headers=user,
    )
    assert merged.status == 200, merged.body


# -- error details carry no control characters ---------------------------------------------------


@pytest.mark.parametrize(
    ("qasm", "shown"),
    [
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nh q[0];\x00\n', "\\x00"),
        ('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nh\x1b[31m q[0];\n', "\\x1b"),
        ("OPENQASM 3.0;\nqubit\x00 q;\n", "\\x00"),
    ],
)
def test_a_control_character_in_a_circuit_is_never_echoed_in_the_error(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    qasm: str,
    shown: str,
) -> None:
    user = make_user()
    answer = http(
        jobs.execute, "POST", "/api/v1/execute", body={"qasm": qasm}, headers=user.headers
    )
    assert_error(answer, 400, "INVALID_QASM")
    detail = answer.body["detail"]
    assert not any(unicodedata.category(c) in {"Cc", "Cf"} for c in detail), repr(detail)
    assert shown in detail  # what was there, escaped


@pytest.mark.parametrize(
    "text",
    ["a\x00b", "tab\tand\nline\r\x0bbreaks", "bell\x07 esc\x1b[2J del\x7f c1\x85", "rtl\u202eevil"],
)
def test_an_error_detail_never_carries_a_control_character(text: str) -> None:
    error = InvalidQasm(text)
    error.detail = f"circuits[0]: {error.detail}"  # as a batch names its circuit
    for detail in (error.detail, str(error), one_line(text), ApiError(text).detail):
        assert not any(unicodedata.category(c) in {"Cc", "Cf"} for c in detail), repr(detail)
    assert InvalidQasm("a\x00b").detail == "a\\x00b"
    assert InvalidQasm("tab\tand\nline").detail == "tab and line"
    assert InvalidQasm("rtl\u202eevil").detail == "rtl\\u202eevil"


def test_a_long_key_the_caller_wrote_is_named_in_a_few_characters(
    services_env: Services, make_user: Callable[..., Any], http: Callable[..., Any]
) -> None:
    user = make_user()
    key = "tag key " + "k" * 5000
    body = {"qasm": BELL, "tags": {key: "v"}}
    answer = http(jobs.execute, "POST", "/api/v1/execute", body=body, headers=user.headers)
    assert_error(answer, 422, "VALIDATION_ERROR")
    assert answer.body["detail"].startswith("tags.tag key kkkkkkkkkkkkkkkkkkkkk...")
    assert len(answer.body["detail"]) < 200
