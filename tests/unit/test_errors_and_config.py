"""The error mapping, the settings and the pieces of the job model that need no storage."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from shared.config import Settings, SettingsError, StorageSettings
from shared.errors import InternalError, NotFound, StorageUnavailable, to_api_error
from shared.http import Auth, Operation, handle
from shared.jobs.messages import JobMessage, MalformedMessage
from shared.jobs.models import Job, JobStatus


def test_api_errors_pass_through_and_outages_become_503_and_the_rest_500() -> None:
    own = NotFound("nope", error_code="JOB_NOT_FOUND")
    assert to_api_error(own) is own
    assert isinstance(to_api_error(ServiceRequestError("refused")), StorageUnavailable)
    server_side = HttpResponseError(message="busy")
    server_side.status_code = 503
    assert isinstance(to_api_error(server_side), StorageUnavailable)
    client_side = HttpResponseError(message="bad")
    client_side.status_code = 400
    assert isinstance(to_api_error(client_side), InternalError)
    assert isinstance(to_api_error(KeyError("x")), InternalError)


def test_an_unexpected_exception_is_a_500_without_a_stack_trace() -> None:
    op = Operation("GET", "/boom", "boom", None, auth=Auth.PUBLIC)

    def explode(ctx: object) -> dict[str, str]:
        raise RuntimeError("secret connection string AccountKey=abc")

    req = func.HttpRequest(method="GET", url="http://h/boom", body=b"")
    resp = handle(req, op, explode)
    body = json.loads(resp.get_body())
    assert resp.status_code == 500
    assert body["error_code"] == "INTERNAL_ERROR" and body["detail"] == "Internal server error"
    assert "Traceback" not in resp.get_body().decode() and "AccountKey" not in str(body)
    assert resp.headers["X-Request-ID"] == body["request_id"]


def test_settings_read_storage_either_way_and_refuse_bad_numbers() -> None:
    conn = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert conn.storage.connection_string == "UseDevelopmentStorage=true"
    identity = Settings.from_env(
        {"AzureWebJobsStorage__accountName": "acct", "AzureWebJobsStorage__clientId": "cid"}
    )
    assert identity.storage == StorageSettings(account_name="acct", client_id="cid")
    assert not Settings.from_env({}).storage.configured
    assert Settings.from_env({}).aer_processes is None  # one per CPU
    assert Settings.from_env({"QCOS_AER_PROCESSES": "3"}).aer_processes == 3
    with pytest.raises(SettingsError, match="QCOS_SYNC_TIMEOUT_SECONDS"):
        Settings.from_env({"QCOS_SYNC_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(SettingsError, match="QCOS_MAX_BODY_BYTES"):
        Settings.from_env({"QCOS_MAX_BODY_BYTES": "10"})


def test_identity_based_storage_builds_clients_for_the_account_without_a_secret() -> None:
    from shared.storage import Storage

    storage = Storage(StorageSettings(account_name="qcosprod", credential="managedidentity"))
    queue = storage.queue_unchecked("jobs")  # builds the client, sends nothing
    assert queue.url == "https://qcosprod.queue.core.windows.net/jobs"


def test_job_messages_carry_ids_only_and_refuse_anything_else() -> None:
    text = JobMessage("u_1", "job-1").encode()
    assert json.loads(text) == {"user_id": "u_1", "job_id": "job-1"}
    assert JobMessage.decode(text) == JobMessage("u_1", "job-1")
    for bad in ["", "[]", "{}", '{"user_id": "u", "job_id": "../x"}', '{"user_id": 1}']:
        with pytest.raises(MalformedMessage):
            JobMessage.decode(bad)


def test_a_job_row_round_trips_and_leaves_unset_fields_out() -> None:
    job = Job(user_id="u", job_id="j", status=JobStatus.QUEUED, shots=5, created_at="t")
    entity = job.to_entity()
    assert entity["PartitionKey"] == "u" and entity["RowKey"] == "j"
    assert entity["status"] == "queued" and "started_at" not in entity
    assert Job.from_entity(entity) == job
    assert JobStatus.CANCELLED.terminal and not JobStatus.PROCESSING.terminal


def test_supplier_credentials_come_from_settings_and_a_braket_bucket_can_be_per_region() -> None:
    # given settings naming IBM and Braket credentials, Braket's bucket per region
    settings = Settings.from_env(
        {
            "QCOS_IBM_TOKEN": "t",
            "QCOS_BRAKET_ACCESS_KEY_ID": "a",
            "QCOS_BRAKET_SECRET_ACCESS_KEY": "s",
            "QCOS_BRAKET_S3_BUCKET": "amazon-braket-results-{region}",
        }
    ).suppliers
    # then IBM and Braket are configured, Azure Quantum is not
    assert settings.ibm.configured and settings.braket.configured
    assert not settings.azure_quantum.configured
    # and each region gets its own bucket; a plain name serves every region
    assert settings.braket.bucket_for("eu-north-1") == "amazon-braket-results-eu-north-1"
    assert settings.braket.bucket_for("") == "amazon-braket-results-us-east-1"
    plain = Settings.from_env({"QCOS_BRAKET_S3_BUCKET": "one-bucket"}).suppliers.braket
    assert plain.bucket_for("us-west-1") == "one-bucket" and not plain.configured


@pytest.mark.parametrize("poll", [0, -1, "2", True, 1.5])
def test_a_poll_message_with_a_bad_poll_number_is_malformed(poll: object) -> None:
    body = json.dumps({"user_id": "u_1", "job_id": "j-1", "poll": poll})
    with pytest.raises(MalformedMessage):
        JobMessage.decode(body)


def test_a_poll_message_round_trips_and_a_run_message_has_no_poll_number() -> None:
    assert JobMessage.decode(JobMessage("u_1", "j-1", poll=3).encode()).poll == 3
    assert "poll" not in JobMessage("u_1", "j-1").encode()


def test_a_key_vault_reference_azure_could_not_resolve_is_read_as_unset() -> None:
    reference = "@Microsoft.KeyVault(VaultName=kv-qcos;SecretName=qcos-admin-api-key)"
    settings = Settings.from_env(
        {
            "QCOS_ADMIN_API_KEY": reference,
            "QCOS_IBM_TOKEN": "@Microsoft.KeyVault(SecretUri=https://kv/secrets/qcos-ibm-token)",
            "QCOS_BRAKET_REGION": reference,
        }
    )
    assert settings.admin_api_key is None
    assert not settings.suppliers.configured("ibm_quantum")  # emulated, not a bogus token
    assert settings.suppliers.braket.region == "us-east-1"  # the default
    resolved = Settings.from_env({"QCOS_ADMIN_API_KEY": "  qcos_admin_" + "a" * 40 + " "})
    assert resolved.admin_api_key == "qcos_admin_" + "a" * 40


def test_a_choice_is_read_whatever_its_case_and_any_other_is_a_400_naming_the_choices() -> None:
    from enum import StrEnum

    from shared.errors import BadRequest, parse_choice

    class Flavour(StrEnum):
        PLAIN = "plain"
        SALTED = "salted"

    assert parse_choice(Flavour, " Salted ", what="flavour", plural="flavours", code="X") is (
        Flavour.SALTED
    )
    with pytest.raises(BadRequest) as refused:
        parse_choice(Flavour, "sweet" * 20, what="flavour", plural="flavours", code="BAD_FLAVOUR")
    assert refused.value.error_code == "BAD_FLAVOUR"
    assert refused.value.detail == (
        f"Unknown flavour {('sweet' * 20)[:40]!r}; flavours: plain, salted"
    )
