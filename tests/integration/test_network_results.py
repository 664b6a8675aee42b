"""Every answer a network job gives (running and ended; one backend, falling over, fan-out,
batch) is the documented `NetworkJobResult`, with no field the model does not name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.accounts.service import Principal
from shared.network.schemas import (
    BatchCircuit,
    NetworkBatchRequest,
    NetworkExecuteRequest,
    NetworkJobResult,
)
from shared.network.service import Accepted
from shared.services import Services
from tests.circuits import BELL, GHZ3
from tests.orchestrations import NoOrchestrations


@pytest.fixture
def principal(short_wait: None, services_env: Services, make_user: Callable[..., Any]) -> Principal:
    return services_env.accounts.authenticate(make_user("professional").api_key)


def run_to_the_end(services: Services, principal: Principal, accepted: Any) -> list[Any]:
    """The job's answers: at submit, while it runs (after its first run), and at its end."""
    network = services.network
    assert isinstance(accepted, Accepted)
    answers = [accepted.body]
    slots = len(network._repo.get(principal.user_id, accepted.job_id).slots)  # type: ignore[union-attr]
    for slot in range(slots):
        network.run_slot(principal.user_id, accepted.job_id, slot, 0)
        if slot == 0:
            answers.append(network.get(principal, accepted.job_id))
    network.finish(principal.user_id, accepted.job_id)
    answers.append(network.get(principal, accepted.job_id))
    return answers


@pytest.mark.parametrize(
    ("strategy", "backends"),
    [
        ("all", ["qiskit_aer", "braket_sv1", "rigetti_aspen"]),  # one retired: skipped
        ("ordered", ["qiskit_aer", "braket_sv1"]),
    ],
)
def test_a_jobs_answers_are_the_documented_model(
    services_env: Services, principal: Principal, strategy: str, backends: list[str]
) -> None:
    request = NetworkExecuteRequest(qasm=BELL, shots=100, strategy=strategy, backends=backends)
    accepted = services_env.network.execute(principal, request, NoOrchestrations())

    answers = run_to_the_end(services_env, principal, accepted)

    shown = [NetworkJobResult.model_validate(answer) for answer in answers]
    assert [s.status for s in shown] == ["queued", "running", "completed"]
    assert shown[1].progress is not None and shown[1].progress.runs_finished >= 1
    assert shown[-1].counts is not None or shown[-1].aggregated_counts is not None


def test_a_direct_job_and_a_batch_answer_the_documented_model(
    services_env: Services, principal: Principal
) -> None:
    direct = services_env.network.execute(
        principal,
        NetworkExecuteRequest(qasm=BELL, shots=100, strategy="fastest", backends=["qiskit_aer"]),
        NoOrchestrations(),
    )
    batch = NetworkBatchRequest(
        circuits=[BatchCircuit(qasm=BELL, name="bell"), BatchCircuit(qasm=GHZ3, name="ghz")],
        shots=100,
        strategy="fastest",
        backends=["qiskit_aer"],
    )
    accepted = services_env.network.execute_batch(principal, batch, NoOrchestrations())

    batch_answers = run_to_the_end(services_env, principal, accepted)

    direct_answer = direct.body if isinstance(direct, Accepted) else direct
    assert NetworkJobResult.model_validate(direct_answer).backend == "qiskit_aer"
    ended = NetworkJobResult.model_validate(batch_answers[-1])
    assert ended.circuits is not None and [c["name"] for c in ended.circuits] == ["bell", "ghz"]
    for answer in batch_answers[:-1]:
        NetworkJobResult.model_validate(answer)
