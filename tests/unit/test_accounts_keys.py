"""API keys and tiers: the pure parts."""

from __future__ import annotations

import base64

from shared.accounts import keys
from shared.accounts.tiers import TIERS, TierName, tier


def test_a_new_key_has_the_prefix_a_public_id_and_256_random_bits() -> None:
    new = keys.generate()
    prefix, key_id, secret = new.secret_key.split("_", 2)
    assert prefix == "qcos" and key_id == new.key_id and len(key_id) == 16
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) * 8 >= 256
    assert keys.public_id(new.secret_key) == new.key_id


def test_only_the_hash_is_kept_and_it_matches_only_the_same_key() -> None:
    new = keys.generate()
    assert new.secret_key not in new.key_hash
    assert keys.matches(new.secret_key, new.key_hash)
    assert not keys.matches(new.secret_key + "x", new.key_hash)
    assert not keys.matches(keys.generate().secret_key, new.key_hash)


def test_two_keys_never_repeat() -> None:
    assert len({keys.generate().secret_key for _ in range(200)}) == 200


def test_malformed_keys_have_no_public_id() -> None:
    for bad in [
        "",
        "qcos_",
        "qcos_xyz_abc",
        "bearer qcos_0123456789abcdef_" + "A" * 43,
        "qcos_0123456789ABCDEF_" + "A" * 43,
        "qcos_0123456789abcdef_" + "A" * 42,
    ]:
        assert keys.public_id(bad) is None, bad


def test_the_tier_table_holds_the_published_limits() -> None:
    assert {name.value: (t.daily_jobs, t.max_qubits, t.max_shots) for name, t in TIERS.items()} == {
        "free": (10, 20, 1024),
        "professional": (1000, 50, 10_000),
        "enterprise": (None, 127, 100_000),
    }
    assert tier("free").name is TierName.FREE
