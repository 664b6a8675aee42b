"""`shared.accounts.service.Accounts`: users, their API keys, and who a presented key is, against
in-memory tables (the HTTP-level behaviour is in tests/functions/)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError

from shared.accounts import ratelimit, service
from shared.accounts.service import ADMIN, KEY_CACHE_SECONDS, Accounts, KeyInfo
from shared.accounts.tiers import TierName
from shared.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from shared.storage.clients import API_KEYS_TABLE, USERS_TABLE
from tests.tables import MemoryStorage

ADMIN_KEY = "qcos_admin_" + "t" * 40


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The service's monotonic clock (how long a verified key is trusted); move `now`."""
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(service, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def accounts(storage: MemoryStorage, monotonic: SimpleNamespace) -> Accounts:
    return Accounts(storage.as_storage(), ADMIN_KEY)


def test_a_new_users_key_authenticates_as_that_user_with_the_tiers_limits(
    accounts: Accounts,
) -> None:
    # given
    created = accounts.create_user(" ada@example.com ", TierName.PROFESSIONAL, tenant="acme")
    # when
    admission = accounts.admit(created.api_key)
    # then the caller is the user, in its tenant, counted against the tier's rate
    principal = admission.principal
    assert (principal.user_id, principal.tier.name, principal.tenant) == (
        created.user.user_id,
        TierName.PROFESSIONAL,
        "acme",
    )
    assert not principal.is_admin and principal.key_id == created.api_key.split("_")[1]
    assert admission.rate is not None and admission.rate.limit == 300
    assert created.user.email == "ada@example.com"
    assert accounts.get_user(created.user.user_id) == created.user


def test_an_email_address_belongs_to_one_user_whatever_its_case(accounts: Accounts) -> None:
    accounts.create_user("ada@example.com", TierName.FREE)
    with pytest.raises(Conflict) as taken:
        accounts.create_user("  ADA@Example.com", TierName.FREE)
    assert taken.value.error_code == "EMAIL_EXISTS"


def test_a_user_created_during_an_outage_leaves_nothing_behind_so_a_retry_works(
    accounts: Accounts, storage: MemoryStorage
) -> None:
    # given the keys table failing while a user is created
    storage.table(API_KEYS_TABLE).down()
    with pytest.raises(HttpResponseError):
        accounts.create_user("ada@example.com", TierName.FREE)
    # then the email and profile rows written before it were removed
    assert storage.table(USERS_TABLE).rows == {}
    # and once storage answers, the same address can be created
    storage.table(API_KEYS_TABLE).down(False)
    assert accounts.create_user("ada@example.com", TierName.FREE).api_key


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "Bearer nothing",
        "qcos_0123456789abcdef_" + "A" * 43,  # well formed, unknown
    ],
)
def test_a_missing_malformed_or_unknown_key_is_a_401(
    accounts: Accounts, presented: str | None
) -> None:
    with pytest.raises(Unauthorized):
        accounts.admit(presented)


def test_a_wrong_secret_for_a_known_key_id_is_refused_even_when_that_key_is_cached(
    accounts: Accounts,
) -> None:
    # given a key verified a moment ago
    key = accounts.create_user("ada@example.com", TierName.FREE).api_key
    accounts.admit(key)
    # when its public id comes with another secret
    forged = key[: key.rindex("_") + 1] + ("B" if key[-1] != "B" else "C") * 43
    # then
    with pytest.raises(Unauthorized):
        accounts.admit(forged)


def test_a_revoked_key_is_refused_at_once_and_the_users_other_key_works(
    accounts: Accounts,
) -> None:
    # given a user with two keys, the first verified (and so kept in memory)
    created = accounts.create_user("ada@example.com", TierName.FREE)
    user_id = created.user.user_id
    info, second = accounts.issue_key(user_id)
    first_id = created.api_key.split("_")[1]
    accounts.admit(created.api_key)
    # when the first is revoked
    assert accounts.revoke_key(user_id, first_id).revoked
    # then it is refused on the next request, and the other key still works
    with pytest.raises(Unauthorized):
        accounts.admit(created.api_key)
    assert accounts.admit(second).principal.user_id == user_id
    assert sorted(k.key_id for k in accounts.list_keys(user_id)) == sorted([first_id, info.key_id])
    assert {k.key_id: k.revoked for k in accounts.list_keys(user_id)} == {
        first_id: True,
        info.key_id: False,
    }


def test_another_instance_honours_a_revoked_key_only_within_the_cache_bound(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    # given two instances, the second having verified a key just now
    here, there = Accounts(storage.as_storage(), None), Accounts(storage.as_storage(), None)
    created = here.create_user("ada@example.com", TierName.FREE)
    there.admit(created.api_key)
    # when the first instance revokes it
    here.revoke_key(created.user.user_id, created.api_key.split("_")[1])
    # then the second may still answer it until KEY_CACHE_SECONDS pass, and not after
    there.admit(created.api_key)
    monotonic.now += KEY_CACHE_SECONDS + 0.1
    with pytest.raises(Unauthorized):
        there.admit(created.api_key)


def test_a_users_key_cannot_be_revoked_by_naming_it_under_another_user(
    accounts: Accounts,
) -> None:
    ada = accounts.create_user("ada@example.com", TierName.FREE)
    bob = accounts.create_user("bob@example.com", TierName.FREE)
    with pytest.raises(NotFound) as missing:
        accounts.revoke_key(bob.user.user_id, ada.api_key.split("_")[1])
    assert missing.value.error_code == "KEY_NOT_FOUND"
    assert accounts.admit(ada.api_key)  # still works


def test_a_tier_change_counts_from_the_users_next_request(accounts: Accounts) -> None:
    # given a free user whose key was just verified
    created = accounts.create_user("ada@example.com", TierName.FREE)
    accounts.admit(created.api_key)
    # when the admin moves it to enterprise, in a tenant
    changed = accounts.update_user(
        created.user.user_id, tier_name=TierName.ENTERPRISE, tenant="acme"
    )
    # then the next request has the new tier's limits and the tenant
    principal = accounts.admit(created.api_key).principal
    assert (principal.tier.name, principal.tenant) == (TierName.ENTERPRISE, "acme")
    assert (changed.tier, changed.tenant) == (TierName.ENTERPRISE, "acme")
    assert accounts.get_user(created.user.user_id) == changed


def test_the_admin_key_is_only_for_admin_routes_and_user_keys_never_are(
    accounts: Accounts,
) -> None:
    # given
    key = accounts.create_user("ada@example.com", TierName.FREE).api_key
    # then
    assert accounts.authenticate(ADMIN_KEY, admin=True) == ADMIN
    assert accounts.admit(ADMIN_KEY, admin_allowed=True).rate is None  # never rate limited
    with pytest.raises(Forbidden):
        accounts.admit(ADMIN_KEY)  # it owns no jobs
    with pytest.raises(Forbidden):
        accounts.admit(key, admin=True)


def test_without_an_admin_key_configured_the_admin_routes_are_closed(
    storage: MemoryStorage, monotonic: SimpleNamespace
) -> None:
    with pytest.raises(Unauthorized):
        Accounts(storage.as_storage(), None).admit(ADMIN_KEY, admin=True)


def test_a_key_over_its_rate_is_a_429(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    # given one minute that does not end during the test, and a free key (60 a minute)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_010.0))
    key = accounts.create_user("ada@example.com", TierName.FREE).api_key
    # when it sends 61 requests, then the last is refused
    for _ in range(60):
        accounts.admit(key)
    with pytest.raises(RateLimited):
        accounts.admit(key)


@pytest.mark.parametrize("user_id", ["u_0123456789abcdef", "not-a-user-id", "u_' or '1'='1"])
def test_an_unknown_or_malformed_user_is_not_found(accounts: Accounts, user_id: str) -> None:
    with pytest.raises(NotFound) as missing:
        accounts.get_user(user_id)
    assert missing.value.error_code == "USER_NOT_FOUND"


def test_a_new_key_is_listed_as_issued(accounts: Accounts) -> None:
    user_id = accounts.create_user("ada@example.com", TierName.FREE).user.user_id
    info, secret = accounts.issue_key(user_id)
    assert isinstance(info, KeyInfo) and not info.revoked
    assert secret.split("_")[1] == info.key_id
    assert len(accounts.list_keys(user_id)) == 2
