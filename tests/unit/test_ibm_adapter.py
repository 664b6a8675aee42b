"""`shared.suppliers.ibm`: its status table, its error sorting, its counts and reasons, its
lazy import of qiskit-ibm-runtime, and the catalog's IBM targets against the SDK's fake backends.

The errors are built as qiskit-ibm-runtime 0.51.0 raises them (`api/session.py`,
`qiskit_runtime_service.py`, `runtime_job_v2.py`): a requests error wrapped in a
`RequestsApiError`, itself often re-raised `from None` as another SDK error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
import requests
from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult
from qiskit.providers.exceptions import QiskitBackendNotFoundError
from qiskit.providers.jobstatus import JobStatus as QiskitJobStatus
from qiskit_ibm_runtime.api.exceptions import RequestsApiError
from qiskit_ibm_runtime.exceptions import (
    IBMInputValueError,
    IBMNotAuthorizedError,
    IBMRuntimeError,
    RuntimeJobFailureError,
    RuntimeJobNotFound,
)
from qiskit_ibm_runtime.runtime_job_v2 import (
    API_TO_JOB_ERROR_MESSAGE,
    API_TO_JOB_STATUS,
    JobStatus,
)

from shared.config import Settings
from shared.suppliers.base import (
    SupplierRejected,
    SupplierState,
    SupplierUnavailable,
    Target,
    map_status,
)
from shared.suppliers.catalog import supplier
from shared.suppliers.devices import fake_backend
from shared.suppliers.ibm import (
    STATUS_MAP,
    IBMQuantum,
    job_reason,
    sampler_counts,
    supplier_error,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ibmk3y-" + "Zq9" * 12
JOBS_URL = "https://quantum.cloud.ibm.com/api/v1/jobs/d4abc"


def http_error(status: int, body: object = None) -> requests.HTTPError:
    """requests' error for a response with `status` and a JSON `body`, as `raise_for_status`
    raises it."""
    response = requests.Response()
    response.status_code = status
    response.reason = {429: "Too Many Requests", 401: "Unauthorized"}.get(status, "Error")
    response.url = f"{JOBS_URL}?exclude_params=true"
    response._content = json.dumps(body).encode() if body is not None else b""
    kind = "Client" if status < 500 else "Server"
    return requests.HTTPError(
        f"{status} {kind} Error: {response.reason} for url: {response.url}", response=response
    )


def sdk_error(outer: Exception, *inner: BaseException) -> Exception:
    """`outer` raised while handling `inner[0]`, itself raised while handling `inner[1]`, ...:
    the chain the SDK's `raise X from None` (or a bare raise in an `except`) leaves behind."""
    links = [outer, *inner]
    for exc, context in zip(links, links[1:], strict=False):
        exc.__context__ = context
        exc.__suppress_context__ = True
    return outer


def session_error(status: int, body: object = None) -> Exception:
    """What `RetrySession.request` raises for an HTTP error (`IBMNotAuthorizedError` for 401)."""
    cause = http_error(status, body)
    message = f"{cause}. {json.dumps(body)}"
    if status == 401:
        return sdk_error(IBMNotAuthorizedError(message), cause)
    if status == 503:  # the SDK's maintenance message, and no status code
        text = (
            "Unexpected response received from server. Please check if the service is in "
            f"maintenance mode https://docs.quantum.ibm.com/announcements/service-alerts {message}"
        )
        return sdk_error(RequestsApiError(text), cause)
    return sdk_error(RequestsApiError(message, status), cause)


# --- the status table -------------------------------------------------------------------------


def test_every_status_in_the_table_maps_to_its_state_however_it_is_written() -> None:
    # given
    for raw, state in STATUS_MAP.items():
        for written in (raw, raw.lower(), raw.title(), f" {raw} "):
            # when
            found = map_status(STATUS_MAP, written)

            # then
            assert found is state, written


def test_the_table_knows_every_status_qiskit_ibm_runtime_can_report() -> None:
    # given: RuntimeJobV2's statuses, the REST API's (passed through upper-cased when unmapped),
    # the "ran too long" cancellation and qiskit's older JobStatus enum
    known = (
        set(get_args(JobStatus))
        | set(API_TO_JOB_STATUS)
        | set(API_TO_JOB_ERROR_MESSAGE)
        | {status.name for status in QiskitJobStatus}
    )

    # when
    missing = {s for s in known if map_status(STATUS_MAP, s) is SupplierState.UNKNOWN}

    # then
    assert missing == set()


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("INITIALIZING", SupplierState.QUEUED),
        ("QUEUED", SupplierState.QUEUED),
        ("VALIDATING", SupplierState.QUEUED),
        ("RUNNING", SupplierState.RUNNING),
        ("DONE", SupplierState.COMPLETED),
        ("ERROR", SupplierState.FAILED),
        ("CANCELLED", SupplierState.CANCELLED),
        ("CANCELLED - RAN TOO LONG", SupplierState.FAILED),
        (QiskitJobStatus.DONE, SupplierState.COMPLETED),
    ],
)
def test_ibm_statuses_read_as_our_states(raw: object, state: SupplierState) -> None:
    # given
    name = raw.name if isinstance(raw, QiskitJobStatus) else raw

    # when
    found = map_status(STATUS_MAP, name)

    # then
    assert found is state


@pytest.mark.parametrize("raw", ["PAUSED", "DONE?", "", None, "RUNNING_LATER", "cancelled-ish"])
def test_a_status_no_table_knows_is_unknown_never_guessed(raw: object) -> None:
    # when
    found = map_status(STATUS_MAP, raw)

    # then
    assert found is SupplierState.UNKNOWN


# --- error sorting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("429 on a job call", lambda: session_error(429, {"errors": [{"message": "slow down"}]})),
        (
            "429 re-raised by service.job",
            lambda: sdk_error(
                IBMRuntimeError(f"Failed to retrieve job: {session_error(429)}"),
                session_error(429),
            ),
        ),
        ("500", lambda: session_error(500)),
        ("502", lambda: session_error(502)),
        ("503, the SDK's maintenance message", lambda: session_error(503)),
        ("408", lambda: session_error(408)),
        ("connection refused", lambda: requests.ConnectionError("Connection refused")),
        ("read timeout", lambda: requests.ReadTimeout("Read timed out. (read timeout=5)")),
        ("a timeout", lambda: TimeoutError("timed out")),
        (
            "retries exhausted",
            lambda: sdk_error(
                RequestsApiError("None: Max retries exceeded with url: /jobs"),
                requests.exceptions.RetryError("too many 503 error responses"),
            ),
        ),
        (
            "backend not listed",
            lambda: QiskitBackendNotFoundError("No backend matches the criteria."),
        ),
    ],
)
def test_what_may_pass_is_transient(name: str, make: object) -> None:
    # given
    exc = make()  # type: ignore[operator]

    # when
    error = supplier_error(exc, "read job d4abc")

    # then
    assert isinstance(error, SupplierUnavailable), name
    assert error.status == 503
    assert error.detail.startswith("IBM Quantum could not read job d4abc")


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        (
            "401",
            lambda: session_error(401, {"errors": [{"message": "Invalid token"}]}),
            "refused the credentials (HTTP 401): Invalid token",
        ),
        (
            "403",
            lambda: session_error(403, {"errors": [{"message": "Forbidden"}]}),
            "refused the credentials (HTTP 403): Forbidden",
        ),
        (
            "400",
            lambda: session_error(400, {"errors": [{"message": "Invalid shots"}]}),
            "(HTTP 400): Invalid shots",
        ),
        (
            "404 job",
            lambda: sdk_error(RuntimeJobNotFound("Job not found: d4abc"), session_error(404)),
            "(HTTP 404)",
        ),
        (
            "a failed job",
            lambda: RuntimeJobFailureError("Unable to retrieve job result. Error code 1517"),
            "Error code 1517",
        ),
        (
            "an instance the key cannot use",
            lambda: IBMInputValueError(
                "The given API token is associated with an account that does not have access "
                "to the instance crn:v1:x"
            ),
            "does not have access",
        ),
    ],
)
def test_refusals_are_permanent_and_say_why(name: str, make: object, says: str) -> None:
    # given
    exc = make()  # type: ignore[operator]

    # when
    error = supplier_error(exc, "read job d4abc")

    # then
    assert isinstance(error, SupplierRejected), name
    assert not isinstance(error, SupplierUnavailable)
    assert says in error.detail


def test_error_messages_carry_no_token_no_traceback_and_one_line() -> None:
    # given
    exc = session_error(
        401,
        {
            "errors": [
                {
                    "message": f"Bad header Authorization: Bearer {TOKEN}\n"
                    f'Traceback (most recent call last):\n  File "x.py"\napikey={TOKEN}'
                }
            ]
        },
    )

    # when
    error = supplier_error(exc, "read job d4abc")

    # then
    assert TOKEN not in error.detail
    assert "\n" not in error.detail
    assert len(error.detail) <= 500


def test_the_configured_key_is_masked_wherever_it_appears() -> None:
    # given: a message no credential pattern recognises
    exc = session_error(400, {"errors": [{"message": f"unknown instance for {TOKEN}"}]})

    # when
    error = supplier_error(exc, "submit the job", secrets=[TOKEN])

    # then
    assert (
        error.detail == "IBM Quantum could not submit the job (HTTP 400): unknown instance for ***"
    )


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    # when
    error = supplier_error(KeyError(), "submit the job")

    # then
    assert isinstance(error, SupplierRejected)
    assert error.detail.endswith("KeyError")


# --- counts and reasons -----------------------------------------------------------------------


def test_sampler_counts_join_registers_shot_by_shot_last_register_first() -> None:
    # given: registers a (1 bit) then b (2 bits), as SamplerV2 returns them, three shots
    a = BitArray.from_samples(["1", "1", "0"], num_bits=1)
    b = BitArray.from_samples(["10", "10", "01"], num_bits=2)
    result = PrimitiveResult([SamplerPubResult(DataBin(a=a, b=b))])

    # when
    counts = sampler_counts(result)

    # then
    assert counts == {"10 1": 2, "01 0": 1}


def test_sampler_counts_of_one_register_have_no_space() -> None:
    # given
    meas = BitArray.from_samples(["001", "001", "110"], num_bits=3)
    result = PrimitiveResult([SamplerPubResult(DataBin(meas=meas))])

    # when
    counts = sampler_counts(result)

    # then
    assert counts == {"001": 2, "110": 1}


def test_a_failed_jobs_reason_drops_the_traceback_and_keeps_the_error() -> None:
    # given
    message = (
        "Job d4abc has failed:\nTraceback (most recent call last):\n"
        '  File "/runtime/run.py", line 3, in main\n    run()\n'
        "ValueError: The number of shots exceeds the limit"
    )

    # when
    reason = job_reason(message, "ERROR")

    # then
    assert reason == "Job d4abc has failed: ValueError: The number of shots exceeds the limit"


def test_a_failed_job_without_a_message_still_has_a_reason() -> None:
    # when
    reason = job_reason(None, "CANCELLED - RAN TOO LONG")

    # then
    assert reason == "IBM Quantum reports the job CANCELLED - RAN TOO LONG"


# --- configuration, import, catalog -----------------------------------------------------------


def test_the_adapter_is_configured_by_a_token_alone() -> None:
    # given
    with_token = Settings.from_env({"QCOS_IBM_TOKEN": TOKEN})

    # when
    configured = IBMQuantum(with_token).configured(), IBMQuantum(Settings()).configured()

    # then
    assert configured == (True, False)


def test_an_unconfigured_adapter_says_so_without_calling_ibm() -> None:
    # given
    ibm = IBMQuantum(Settings())

    # when
    reason = ibm.check_credentials()

    # then
    assert reason == "IBM Quantum is not configured (QCOS_IBM_TOKEN)"


def test_importing_the_adapter_does_not_import_qiskit_ibm_runtime() -> None:
    # given
    code = (
        "import sys, shared.suppliers.ibm\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'qiskit_ibm_runtime'))"
    )

    # when
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    # then
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("target", supplier("ibm_quantum").targets(), ids=lambda t: t.name)
def test_catalog_ibm_targets_agree_with_their_fake_backends(target: Target) -> None:
    # when
    backend = fake_backend(target.calibration)

    # then
    assert backend.name == target.calibration == "fake_" + target.name.removeprefix("ibm_")
    assert backend.num_qubits == target.num_qubits
    assert set(target.native_gates) <= set(backend.operation_names)


def test_a_fake_backend_is_built_once_per_process() -> None:
    # when
    first, second = fake_backend("fake_brisbane"), fake_backend("fake_brisbane")

    # then
    assert first is second


def test_an_unknown_fake_backend_is_refused() -> None:
    # when
    with pytest.raises(ValueError, match="no fake backend named 'fake_nowhere'"):
        fake_backend("fake_nowhere")
