"""`shared.signing`: Ed25519 signatures over canonical JSON, the one way the app signs documents
(ledger evidence bundles, the deployment's license)."""

from __future__ import annotations

import base64

import pytest

from shared import signing
from shared.signing import BadKey

KEY = signing.new_private_key()
PUBLIC = signing.public_b64(KEY)
DOCUMENT = {"licensee": "Example GmbH", "features": ["quantum_hardware"], "seats": 5}


def test_a_signed_document_verifies_with_the_signers_public_key() -> None:
    assert signing.verify(PUBLIC, DOCUMENT, signing.sign(KEY, DOCUMENT))


def test_the_same_object_always_has_the_same_bytes_whatever_its_key_order() -> None:
    # given the same document built in another order
    reordered = {"seats": 5, "features": ["quantum_hardware"], "licensee": "Example GmbH"}
    # then one signature fits both
    assert signing.canonical(reordered) == signing.canonical(DOCUMENT)
    assert signing.verify(PUBLIC, reordered, signing.sign(KEY, DOCUMENT))


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert signing.canonical({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}'.encode()


def test_a_value_json_cannot_carry_is_refused_rather_than_signed() -> None:
    with pytest.raises(ValueError):
        signing.canonical({"cost": float("nan")})


@pytest.mark.parametrize(
    "changed",
    [
        {**DOCUMENT, "seats": 6},
        {**DOCUMENT, "extra": None},
        {k: v for k, v in DOCUMENT.items() if k != "seats"},
    ],
)
def test_any_change_to_the_document_breaks_the_signature(changed: dict[str, object]) -> None:
    assert not signing.verify(PUBLIC, changed, signing.sign(KEY, DOCUMENT))


def test_another_signers_key_does_not_verify() -> None:
    other = signing.new_private_key()
    assert not signing.verify(signing.public_b64(other), DOCUMENT, signing.sign(KEY, DOCUMENT))


@pytest.mark.parametrize(
    ("public", "signature"),
    [
        ("not base64!", None),
        (base64.b64encode(b"short").decode(), None),
        (PUBLIC, "not base64!"),
        (PUBLIC, base64.b64encode(b"\0" * 64).decode()),
        (PUBLIC, ""),
    ],
)
def test_a_malformed_key_or_signature_is_false_never_an_exception(
    public: str, signature: str | None
) -> None:
    signed = signing.sign(KEY, DOCUMENT) if signature is None else signature
    assert signing.verify(public, DOCUMENT, signed) is False


def test_a_private_key_travels_as_the_base64_of_its_seed() -> None:
    # given a key written out as its seed
    seed = signing.seed_b64(KEY)
    assert len(base64.b64decode(seed)) == 32
    # when it is read back
    again = signing.private_key(seed)
    # then it is the same key: same public half, and what it signs verifies
    assert signing.public_b64(again) == PUBLIC
    assert signing.verify(PUBLIC, DOCUMENT, signing.sign(again, DOCUMENT))
    assert signing.private_key(f"  {seed}\n") is not None  # as pasted into a setting


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("%%%", "not valid base64"),
        (base64.b64encode(b"x" * 31).decode(), r"must be 32 bytes \(base64\), not 31"),
        (base64.b64encode(b"x" * 64).decode(), "not 64"),
    ],
)
def test_a_key_that_is_not_base64_of_32_bytes_is_a_bad_key(text: str, why: str) -> None:
    with pytest.raises(BadKey, match=why):
        signing.private_key(text)
    with pytest.raises(BadKey, match=why):
        signing.public_key(text)
