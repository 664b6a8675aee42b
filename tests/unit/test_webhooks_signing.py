"""`shared.webhooks.signing`: the `X-QCOS-Signature` header softqcos-sdk's
`WebhooksAPI.verify_signature` checks, made and checked."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.webhooks.signing import HEADER, TOLERANCE_SECONDS, sign, verify

SECRET = "whsec_0123456789abcdef"
BODY = '{"id":"evt_1","type":"job.completed","data":{"job_id":"j1"}}'
SENT = 1_800_000_000


def test_the_header_is_the_timestamp_and_the_hex_hmac_of_timestamp_dot_body() -> None:
    # given what a receiver computes from the documented scheme
    expected = hmac.new(SECRET.encode(), f"{SENT}.{BODY}".encode(), hashlib.sha256).hexdigest()
    # when / then
    assert HEADER == "X-QCOS-Signature"
    assert sign(SECRET, BODY, timestamp=SENT) == f"t={SENT},v1={expected}"


def test_a_signature_verifies_with_its_secret_and_body_when_fresh() -> None:
    header = sign(SECRET, BODY, timestamp=SENT)
    assert verify(SECRET, BODY, header, now=SENT + 10)
    assert verify(SECRET, BODY, header, now=SENT - 10)  # a receiver's clock a little behind


def test_without_a_timestamp_the_signature_is_made_now() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY))


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        ("whsec_another_secret_00", BODY),
        (SECRET, BODY.replace("j1", "j2")),
        (SECRET, BODY + " "),
    ],
)
def test_another_secret_or_a_changed_body_does_not_verify(secret: str, body: str) -> None:
    assert not verify(secret, body, sign(SECRET, BODY, timestamp=SENT), now=SENT)


def test_a_replayed_or_future_signature_outside_the_tolerance_does_not_verify() -> None:
    header = sign(SECRET, BODY, timestamp=SENT)
    assert verify(SECRET, BODY, header, now=SENT + TOLERANCE_SECONDS)
    assert not verify(SECRET, BODY, header, now=SENT + TOLERANCE_SECONDS + 1)
    assert not verify(SECRET, BODY, header, now=SENT - TOLERANCE_SECONDS - 1)
    assert verify(SECRET, BODY, header, tolerance=3600, now=SENT + 3000)


def test_a_timestamp_changed_after_signing_does_not_verify() -> None:
    signature = sign(SECRET, BODY, timestamp=SENT).split(",")[1]
    assert not verify(SECRET, BODY, f"t={SENT + 5},{signature}", now=SENT)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", f"t={SENT}", "v1=00", f"t={SENT},v1", f"t={SENT};v1=00"],
)
def test_a_malformed_header_is_false_never_an_exception(header: str) -> None:
    assert verify(SECRET, BODY, header, now=SENT) is False
