"""The Braket adapter's real path, offline: the SDK's `AwsSession` and boto3 as they are, with
botocore's `Stubber` on the adapter's own Braket client (moto has no Braket) and moto's S3
holding the results.json Braket would write."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.config import BraketSettings, Settings, SupplierSettings
from shared.suppliers.base import (
    SubmitRequest,
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
)
from shared.suppliers.braket import Braket
from shared.suppliers.catalog import supplier

BUCKET = "amazon-braket-qcos-tests"
REGION = "us-east-1"
ACCOUNT = "123456789012"
V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
# qubits 0 and 2 flipped, measured out of order into two registers: qiskit's key is '1 01'.
ASYMMETRIC = V2 + (
    "qreg q[3];\ncreg a[2];\ncreg b[1];\nx q[0];\nx q[2];\n"
    "measure q[2] -> a[0];\nmeasure q[1] -> a[1];\nmeasure q[0] -> b[0];\n"
)


def parsed(qasm: str) -> ParsedCircuit:
    bounds = CircuitLimits(
        max_qasm_bytes=262_144,
        max_qubits=40,
        max_clbits=1024,
        max_operations=1_000_000,
        max_depth=100_000,
    )
    return parse_circuit(qasm, bounds)


def task_arn(region: str = REGION) -> str:
    return f"arn:aws:braket:{region}:{ACCOUNT}:quantum-task/{uuid.uuid4()}"


@dataclass
class Cloud:
    """The adapter, a Stubber on its Braket client in us-east-1, and moto's S3."""

    braket: Braket
    stub: Stubber
    s3: Any

    def action_of(self, circuit: ParsedCircuit) -> str:
        """The `action` a task for `circuit` carries: what the adapter sends."""
        from braket.ir.openqasm import Program

        from shared.circuits.to_braket import to_braket

        return Program(source=to_braket(circuit).source).json()

    def expect_create(self, target: Target, job_id: str, shots: int, action: str, arn: str) -> None:
        self.stub.add_response(
            "create_quantum_task",
            {"quantumTaskArn": arn},
            {
                "clientToken": job_id,  # the job id, every time: Braket's idempotency key
                "deviceArn": target.ref,
                "shots": shots,
                "outputS3Bucket": BUCKET,
                "outputS3KeyPrefix": f"qcos/{job_id}",
                "action": action,
            },
        )

    def expect_get(self, target: Target, arn: str, status: str, **extra: Any) -> str:
        """Answer the next GetQuantumTask with `status`; the task's S3 directory."""
        directory = f"qcos/job/{arn.rsplit('/', 1)[1]}"
        response = {
            "quantumTaskArn": arn,
            "status": status,
            "deviceArn": target.ref,
            "deviceParameters": "{}",
            "shots": 100,
            "outputS3Bucket": BUCKET,
            "outputS3Directory": directory,
            "createdAt": datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
            **extra,
        }
        expected = {"quantumTaskArn": arn, "additionalAttributeNames": ["QueueInfo"]}
        self.stub.add_response("get_quantum_task", response, expected)
        return directory

    def write_results(self, directory: str, results: dict[str, Any]) -> None:
        from braket.task_result import GateModelTaskResult

        body = json.dumps(results)
        GateModelTaskResult.parse_raw(body)  # the fixture is a valid results.json for the SDK
        self.s3.put_object(Bucket=BUCKET, Key=f"{directory}/results.json", Body=body)


def results_json(
    arn: str, target: Target, action: str, shots: int, **outcomes: Any
) -> dict[str, Any]:
    """A GateModelTaskResult as Braket writes it for an OpenQASM task."""
    return {
        "braketSchemaHeader": {"name": "braket.task_result.gate_model_task_result", "version": "1"},
        **outcomes,
        "taskMetadata": {
            "braketSchemaHeader": {"name": "braket.task_result.task_metadata", "version": "1"},
            "id": arn,
            "shots": shots,
            "deviceId": target.ref,
            "createdAt": "2026-11-21T09:00:00.000Z",
            "endedAt": "2026-11-21T09:00:02.000Z",
            "status": "COMPLETED",
        },
        "additionalMetadata": {
            "action": json.loads(action),
            "simulatorMetadata": {
                "braketSchemaHeader": {
                    "name": "braket.task_result.simulator_metadata",
                    "version": "1",
                },
                "executionDuration": 12,
            },
        },
    }


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    settings = Settings(
        suppliers=SupplierSettings(
            braket=BraketSettings(
                access_key_id="AKIAIOSFODNN7EXAMPLE",
                secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                region=REGION,
                s3_bucket=BUCKET,
                s3_prefix="qcos",
            )
        )
    )
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        braket = Braket(settings)
        with Stubber(braket.aws_session(REGION).braket_client) as stub:
            yield Cloud(braket, stub, s3)
            stub.assert_no_pending_responses()


def sv1() -> Target:
    return supplier("braket").target("sv1")


def test_a_task_is_submitted_polled_to_completion_and_its_counts_are_in_qiskits_order(
    cloud: Cloud,
) -> None:
    # given the asymmetric circuit, submitted to sv1 as job-123
    circuit, target, arn = parsed(ASYMMETRIC), sv1(), task_arn()
    action = cloud.action_of(circuit)
    cloud.expect_create(target, "job-123", 100, action, arn)
    # when it is submitted, then polled while Braket queues, runs and completes it
    submitted = cloud.braket.submit(SubmitRequest("job-123", target, circuit, 100))
    cloud.expect_get(target, arn, "QUEUED")
    queued = cloud.braket.poll(target, arn)
    cloud.expect_get(target, arn, "RUNNING")
    running = cloud.braket.poll(target, arn)
    directory = cloud.expect_get(target, arn, "COMPLETED")
    # Braket lists measured qubits in its own order; a shot is a row of their outcomes
    measurements = [[1, 0, 1]] * 97 + [[1, 1, 1]] * 2 + [[0, 0, 1]]
    outcomes = {"measurements": measurements, "measuredQubits": [0, 1, 2]}
    cloud.write_results(directory, results_json(arn, target, action, 100, **outcomes))
    done = cloud.braket.poll(target, arn)
    # then the task is Braket's, its states ours, and its counts keyed as qiskit keys them
    assert submitted == arn
    assert (queued.state, running.state) == (SupplierState.QUEUED, SupplierState.RUNNING)
    assert done.state is SupplierState.COMPLETED and done.raw_status == "COMPLETED"
    assert done.counts == {"1 01": 97, "1 11": 2, "0 01": 1}
    assert done.execution_time_ms == 12.0


def test_results_given_as_probabilities_become_counts_of_the_tasks_shots(cloud: Cloud) -> None:
    # given a completed task whose results.json holds probabilities, not shots
    circuit, target, arn = parsed(ASYMMETRIC), sv1(), task_arn()
    action = cloud.action_of(circuit)
    directory = cloud.expect_get(target, arn, "COMPLETED")
    outcomes = {"measurementProbabilities": {"101": 0.75, "111": 0.25}, "measuredQubits": [0, 1, 2]}
    cloud.write_results(directory, results_json(arn, target, action, 200, **outcomes))
    # when it is polled
    done = cloud.braket.poll(target, arn)
    # then the counts sum to the shots, in qiskit's bit order
    assert done.counts == {"1 01": 150, "1 11": 50}


def test_a_redelivered_message_finds_the_task_it_already_created(cloud: Cloud) -> None:
    # given a job submitted once, whose message is delivered again
    circuit, target, arn = parsed(ASYMMETRIC), sv1(), task_arn()
    action = cloud.action_of(circuit)
    # Braket answers a client token it has seen with the task that token created; the stub
    # refuses any call whose clientToken is not the job id
    cloud.expect_create(target, "job-redelivered", 10, action, arn)
    cloud.expect_create(target, "job-redelivered", 10, action, arn)
    # when both deliveries submit it
    first = cloud.braket.submit(SubmitRequest("job-redelivered", target, circuit, 10))
    second = cloud.braket.submit(SubmitRequest("job-redelivered", target, circuit, 10))
    # then both sent the job id as the client token and got the same task
    assert first == second == arn


def test_cancel_asks_braket_to_stop_the_task_with_a_token_of_its_own(cloud: Cloud) -> None:
    # given a running task
    target, arn = sv1(), task_arn()
    token = str(uuid.uuid5(uuid.NAMESPACE_URL, arn))
    for _ in range(2):
        cloud.stub.add_response(
            "cancel_quantum_task",
            {"quantumTaskArn": arn, "cancellationStatus": "CANCELLING"},
            {"quantumTaskArn": arn, "clientToken": token},
        )
    # when it is cancelled, and the cancel is retried
    cloud.braket.cancel(target, arn)
    cloud.braket.cancel(target, arn)
    # then Braket got the same request twice (the stub checks arn and token), and polls follow
    cloud.expect_get(target, arn, "CANCELLING")
    assert cloud.braket.poll(target, arn).state is SupplierState.RUNNING
    cloud.expect_get(target, arn, "CANCELLED")
    assert cloud.braket.poll(target, arn).state is SupplierState.CANCELLED


def test_cancelling_a_task_that_already_finished_is_not_an_error(cloud: Cloud) -> None:
    # given a task Braket will not cancel because it already completed
    target, arn = sv1(), task_arn()
    cloud.stub.add_client_error(
        "cancel_quantum_task",
        service_error_code="ConflictException",
        service_message="Task is in a terminal state",
        http_status_code=409,
    )
    # when it is cancelled, then nothing is raised
    cloud.braket.cancel(target, arn)


def test_a_throttled_submit_is_transient_and_retried_later(cloud: Cloud) -> None:
    # given Braket throttling the account
    circuit, target = parsed(ASYMMETRIC), sv1()
    cloud.stub.add_client_error(
        "create_quantum_task",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=429,
    )
    # when the job is submitted, then it is a 503 the queue retries
    with pytest.raises(SupplierUnavailable, match="ThrottlingException: Rate exceeded") as raised:
        cloud.braket.submit(SubmitRequest("job-throttled", target, circuit, 10))
    assert raised.value.status == 503


def test_a_refused_program_fails_the_job_with_a_sanitised_message(cloud: Cloud) -> None:
    # given Braket refusing the task, with a message that carries a signed URL's token
    circuit, target = parsed(ASYMMETRIC), sv1()
    cloud.stub.add_client_error(
        "create_quantum_task",
        service_error_code="ValidationException",
        service_message="shots out of range; see https://x.example/?X-Amz-Security-Token=s3cr3t",
        http_status_code=400,
    )
    # when the job is submitted, then it fails for good, without the token
    with pytest.raises(SupplierRejected, match="ValidationException: shots out of range") as raised:
        cloud.braket.submit(SubmitRequest("job-refused", target, circuit, 10))
    assert "s3cr3t" not in raised.value.detail


def test_a_task_braket_failed_reports_its_reason(cloud: Cloud) -> None:
    # given a task Braket failed, with a reason over two lines
    target, arn = sv1(), task_arn()
    reason = "Program validation failed:\nqubit 40 is out of range; token=abc123"
    cloud.expect_get(target, arn, "FAILED", failureReason=reason)
    # when it is polled
    polled = cloud.braket.poll(target, arn)
    # then the job can fail with a readable, one-line reason
    assert polled.state is SupplierState.FAILED and polled.counts is None
    assert polled.reason == "Program validation failed: qubit 40 is out of range; token=***"


def test_results_that_cannot_be_read_fail_the_job_rather_than_guess(cloud: Cloud) -> None:
    # given a completed task whose results.json echoes no program
    target, arn = sv1(), task_arn()
    directory = cloud.expect_get(target, arn, "COMPLETED")
    results = results_json(
        arn, target, '{"source": "OPENQASM 3.0;"}', 10, measurements=[[1]], measuredQubits=[0]
    )
    cloud.write_results(directory, results)
    # when it is polled, then the job fails with the reason
    with pytest.raises(SupplierRejected, match="could not be read: .*register layout"):
        cloud.braket.poll(target, arn)


def test_targets_in_other_regions_use_a_session_of_their_region(cloud: Cloud) -> None:
    # given Rigetti Cepheus, a device in us-west-1
    circuit, target = parsed(ASYMMETRIC), supplier("braket").target("cepheus-1-108q")
    west = cloud.braket.aws_session(target.region)
    arn = task_arn(target.region)
    with Stubber(west.braket_client) as stub:
        stub.add_response(
            "create_quantum_task",
            {"quantumTaskArn": arn},
            {
                "clientToken": "job-west",
                "deviceArn": target.ref,
                "shots": 10,
                "outputS3Bucket": BUCKET,
                "outputS3KeyPrefix": "qcos/job-west",
                "action": cloud.action_of(circuit),
            },
        )
        # when a job is submitted to it
        submitted = cloud.braket.submit(SubmitRequest("job-west", target, circuit, 10))
        stub.assert_no_pending_responses()
    # then it went through the us-west-1 session, made once and kept
    assert submitted == arn
    assert west.braket_client.meta.region_name == "us-west-1"
    assert cloud.braket.aws_session("us-west-1") is west
    assert cloud.braket.aws_session(REGION) is not west


def test_credentials_are_checked_against_braket_and_the_results_bucket(cloud: Cloud) -> None:
    # given Braket answering a device search, then refusing the keys
    cloud.stub.add_response("search_devices", {"devices": []}, {"filters": [], "maxResults": 1})
    cloud.stub.add_client_error(
        "search_devices",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform braket:SearchDevices",
        http_status_code=403,
    )
    # when the credentials are checked twice
    working = cloud.braket.check_credentials()
    refused = cloud.braket.check_credentials()
    # then the first check passes (the bucket exists in moto's S3) and the second says why not
    assert working is None
    assert refused is not None and "AccessDeniedException" in refused
