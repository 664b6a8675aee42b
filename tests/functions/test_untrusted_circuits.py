"""Circuits are untrusted input: the attacks an adversarial run found are refused before the
parser sees them (or, for a run the estimate shows too long, before anything is stored), with
the standard error body, through v1 execute, execute-sync and the v2 batch; nothing is stored,
charged or left reserved. Against Azurite through the registered functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

from shared.accounts.tiers import tier
from shared.api import jobs, network
from shared.circuits import parser as parser_module
from shared.http import handle
from shared.services import Services, services
from tests.circuits import BELL

ERROR_KEYS = {"detail", "error_code", "request_id"}
V3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\n'
PARAMETERS = 12_000

# Each refused before the parser runs: (circuit, status, error code).
PARSE_ATTACKS = {
    "unary-minus-chain": (V3 + "rx(" + "-" * 200_000 + "1) q[0];\n", 400, "INVALID_QASM"),
    "plus-chain": (V3 + "rx(" + "+".join(["1"] * 60_000) + ") q[0];\n", 400, "INVALID_QASM"),
    "thousands-of-gate-parameters": (
        V3
        + "gate g("
        + ",".join(f"p{i}" for i in range(PARAMETERS))
        + ") a { rx(p0) a; }\n"
        + "g("
        + ",".join(["0.1"] * PARAMETERS)
        + ") q[0];\n",
        400,
        "INVALID_QASM",
    ),  # fmt: skip
    "openqasm-3-token-flood": (V3 + "x q[0];\n" * 30_000, 400, "CIRCUIT_TOO_COMPLEX"),
}
# 104 bytes: an empty loop of 500,000 iterations ran 13.9 minutes on the free tier.
EMPTY_LOOP = V3 + "for int i in [0:499999] { }\n"


@pytest.fixture
def parser_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(qasm: str, version: int) -> None:
        raise AssertionError("the circuit reached the parser")

    monkeypatch.setattr(parser_module, "_parse", refuse)


def batch(http: Callable[..., Any], user: Any, body: dict[str, Any]) -> Any:
    """POST /api/v2/network/execute/batch through the request pipeline; a refused batch never
    reaches the durable client, so none is given."""

    def call(req: func.HttpRequest) -> func.HttpResponse:
        return handle(
            req,
            network.BATCH,
            lambda ctx: services().network.execute_batch(ctx.user, ctx.body, None),
        )

    return http(call, "POST", "/api/v2/network/execute/batch", headers=user.headers, body=body)


def assert_refused(answer: Any, status: int, code: str) -> None:
    assert answer.status == status, answer.body
    assert ERROR_KEYS <= set(answer.body)  # v2 adds "success": false
    assert answer.body["error_code"] == code


def assert_nothing_kept(svc: Services, user: Any) -> None:
    """No job row, no ledger entry, no quota run reserved."""
    repo = svc.jobs._repo  # noqa: SLF001
    assert repo.count(user.user_id) == 0
    assert list(svc.ledger.repo.entries(user_id=user.user_id)) == []
    assert svc.quotas.use(user.user_id, tier(user.tier)).used == 0


@pytest.mark.parametrize("attack", list(PARSE_ATTACKS))
@pytest.mark.parametrize("fn", [jobs.execute, jobs.execute_sync], ids=["execute", "sync"])
def test_a_circuit_that_would_hold_the_parser_is_refused_before_it_parses(
    attack: str,
    fn: Any,
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    parser_must_not_run: None,
) -> None:
    # given a free user and a circuit under the size cap that the parser would choke on
    user = make_user("free")
    circuit, status, code = PARSE_ATTACKS[attack]
    # when
    answer = http(fn, "POST", "/api/v1/execute", headers=user.headers, body={"qasm": circuit})
    # then
    assert_refused(answer, status, code)
    assert_nothing_kept(services_env, user)


@pytest.mark.parametrize("shots", [1024, 100_000])
def test_an_empty_loop_of_half_a_million_iterations_is_refused_at_submit(
    shots: int,
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
) -> None:
    # given a free user (and an enterprise one, for the shot count the free tier refuses)
    user = make_user("free" if shots <= 1024 else "enterprise")
    # when
    answer = http(
        jobs.execute,
        "POST",
        "/api/v1/execute",
        headers=user.headers,
        body={"qasm": EMPTY_LOOP, "shots": shots},
    )
    # then the estimate saw the loop, and nothing was kept
    assert_refused(answer, 400, "RUN_TIME_LIMIT_EXCEEDED")
    assert "more than 300 s" in answer.body["detail"]
    assert_nothing_kept(services_env, user)


@pytest.mark.parametrize("attack", list(PARSE_ATTACKS))
def test_a_batch_checks_every_circuit_before_it_parses_any(
    attack: str,
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    parser_must_not_run: None,
) -> None:
    # given a batch of valid circuits with the attack last
    user = make_user("enterprise")
    circuit, status, code = PARSE_ATTACKS[attack]
    circuits = [{"qasm": BELL}] * 5 + [{"qasm": circuit}]
    # when
    answer = batch(http, user, {"circuits": circuits})
    # then it is refused naming the circuit, before any circuit reached the parser
    assert_refused(answer, status, code)
    assert answer.body["detail"].startswith("circuits[5]: ")
    assert_nothing_kept(services_env, user)


def test_a_batch_whose_circuits_together_flood_the_parser_is_refused(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    parser_must_not_run: None,
) -> None:
    # given ten OpenQASM 3 circuits, each within the token bound, together well past it
    user = make_user("enterprise")
    circuits = [{"qasm": V3 + "x q[0];\n" * 3_000}] * 10
    # when
    answer = batch(http, user, {"circuits": circuits})
    # then
    assert_refused(answer, 400, "CIRCUIT_TOO_COMPLEX")
    assert answer.body["detail"].startswith("The batch's circuits have ")
    assert_nothing_kept(services_env, user)


def test_a_batch_of_more_circuits_than_runs_allowed_is_refused_before_parsing(
    services_env: Services,
    make_user: Callable[..., Any],
    http: Callable[..., Any],
    parser_must_not_run: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a limit of 3 runs a batch and 4 circuits
    from shared.config import get_settings

    monkeypatch.setenv("QCOS_NETWORK_MAX_RUNS", "3")
    get_settings.cache_clear()
    services.cache_clear()
    user = make_user("enterprise")
    # when
    answer = batch(http, user, {"circuits": [{"qasm": BELL}] * 4})
    # then
    assert_refused(answer, 400, "TOO_MANY_RUNS")
    assert_nothing_kept(services(), user)
