"""The ledger's usage filter (`Ledger.usage`, `Ledger.usage_page`, `Ledger.chargeback`) against
Azurite: which entries a usage report keeps for a period, a tenant, a project and a backend,
and what each caller may see."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared import clock
from shared.accounts.service import ADMIN, Principal
from shared.accounts.tiers import tier
from shared.errors import Forbidden
from shared.ledger.models import LedgerEntry
from shared.ledger.service import Cost, Ledger, UsageFilter, charge_entry
from shared.services import Services

# A price for each entry; the filter never looks at it.
_COST = Cost(Decimal("0.30"), Decimal("0.30"), "USD", "pricebook test")


def a_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def enterprise(user_id: str, tenant: str = "") -> Principal:
    return Principal(user_id=user_id, tier=tier("enterprise"), key_id="k", tenant=tenant)


@dataclass
class Book:
    """A ledger with entries charged at hours of a period of its own, far in the past, so no
    other test's entry falls in it."""

    ledger: Ledger
    start: datetime

    def at(self, hours: int) -> str:
        return clock.iso(self.start + timedelta(hours=hours))

    def charge(
        self,
        user_id: str,
        hour: int,
        *,
        tenant: str = "",
        project: str = "",
        supplier: str | None = None,
        backend: str = "qiskit_aer",
    ) -> str:
        job_id = a_name("job")
        entry = charge_entry(
            user_id=user_id,
            job_id=job_id,
            tenant=tenant,
            project=project,
            supplier=supplier,
            backend=backend,
            mode="local" if supplier is None else "emulated",
            shots=10,
            cost=_COST,
            time=self.at(hour),
        )
        assert self.ledger.charge(entry) is not None
        return job_id

    def period(self, **given: str) -> UsageFilter:
        return UsageFilter(self.at(0), self.at(24), **given)


@pytest.fixture
def book(services_env: Services) -> Book:
    second = random.randrange(50 * 365 * 86_400)  # a day of its own between 1950 and 2000
    return Book(services_env.ledger, datetime(1950, 1, 1, tzinfo=UTC) + timedelta(seconds=second))


def job_ids(entries: list[LedgerEntry]) -> set[str]:
    return {e.job_id for e in entries}


def test_a_period_keeps_entries_from_its_start_and_before_its_end(book: Book) -> None:
    # given entries of one tenant an hour before, at the start of, inside, and at the end of
    # a day
    tenant, user = a_name("t"), a_name("u")
    before = book.charge(user, -1, tenant=tenant)
    first = book.charge(user, 0, tenant=tenant)
    inside = book.charge(user, 12, tenant=tenant)
    at_end = book.charge(user, 24, tenant=tenant)
    # when the tenant's user asks for that day
    kept = book.ledger.usage(enterprise(user, tenant), book.period())
    # then the day holds its start and what lies inside, not what came before or at its end
    assert job_ids(kept) == {first, inside}
    assert {before, at_end}.isdisjoint(job_ids(kept))


def test_an_enterprise_user_sees_only_their_tenants_entries(book: Book) -> None:
    # given entries of two users of one tenant and of a user of another tenant
    ours, theirs = a_name("t"), a_name("t")
    alice, bob, eve = a_name("u"), a_name("u"), a_name("u")
    kept = {book.charge(alice, 1, tenant=ours), book.charge(bob, 2, tenant=ours)}
    book.charge(eve, 3, tenant=theirs)
    # when alice asks for the day's usage
    entries = book.ledger.usage(enterprise(alice, ours), book.period())
    # then she sees her tenant's entries, her colleague's included, and nobody else's
    assert job_ids(entries) == kept


def test_a_user_without_a_tenant_sees_only_their_own_entries(book: Book) -> None:
    # given entries of two users without a tenant
    alone, other = a_name("u"), a_name("u")
    mine = book.charge(alone, 1)
    book.charge(other, 2)
    # when one of them asks for the day's usage
    entries = book.ledger.usage(enterprise(alone), book.period())
    # then they see their own entries only
    assert job_ids(entries) == {mine}


def test_the_admin_sees_every_tenant_or_the_one_asked_for(book: Book) -> None:
    # given entries of two tenants in a day
    one, two = a_name("t"), a_name("t")
    of_one = book.charge(a_name("u"), 1, tenant=one)
    of_two = book.charge(a_name("u"), 2, tenant=two)
    # when the admin asks for the day, then for one tenant's part of it
    everything = book.ledger.usage(ADMIN, book.period())
    one_tenant = book.ledger.usage(ADMIN, book.period(tenant=one))
    # then the day holds both tenants' entries, and the tenant's part only its own
    assert job_ids(everything) == {of_one, of_two}
    assert job_ids(one_tenant) == {of_one}


def test_a_project_keeps_only_that_projects_entries(book: Book) -> None:
    # given a tenant's entries of two projects and of none
    tenant, user = a_name("t"), a_name("u")
    vqe = book.charge(user, 1, tenant=tenant, project="vqe")
    book.charge(user, 2, tenant=tenant, project="qaoa")
    book.charge(user, 3, tenant=tenant)
    # when the tenant's usage is asked for project vqe
    entries = book.ledger.usage(enterprise(user, tenant), book.period(project="vqe"))
    # then only that project's entry is kept
    assert job_ids(entries) == {vqe}


@pytest.mark.parametrize("asked", ["braket_iqm_garnet", "garnet"])
def test_a_backend_keeps_its_entries_under_either_of_its_names(book: Book, asked: str) -> None:
    # given entries on one device, one stored with the network's id and an older one with
    # the supplier's own name, and an entry on the local simulator
    tenant, user = a_name("t"), a_name("u")
    by_id = book.charge(user, 1, tenant=tenant, supplier="braket", backend="braket_iqm_garnet")
    by_name = book.charge(user, 2, tenant=tenant, supplier="braket", backend="garnet")
    book.charge(user, 3, tenant=tenant)
    # when the usage of that backend is asked for by one of its names
    entries = book.ledger.usage(enterprise(user, tenant), book.period(backend=asked))
    # then both of its entries are kept, and the simulator's is not
    assert job_ids(entries) == {by_id, by_name}


def test_filters_combine(book: Book) -> None:
    # given entries that each miss one of the filters asked for
    tenant, user = a_name("t"), a_name("u")
    wanted = book.charge(user, 5, tenant=tenant, project="vqe", supplier="braket", backend="garnet")
    book.charge(user, 6, tenant=tenant, project="qaoa", supplier="braket", backend="garnet")
    book.charge(user, 7, tenant=tenant, project="vqe")
    book.charge(user, 30, tenant=tenant, project="vqe", supplier="braket", backend="garnet")
    # when the usage is asked for a project and a backend in the day
    asked = book.period(project="vqe", backend="braket_iqm_garnet")
    entries = book.ledger.usage(enterprise(user, tenant), asked)
    # then only the entry that meets all of them is kept
    assert job_ids(entries) == {wanted}


def test_usage_lists_entries_oldest_first(book: Book) -> None:
    # given a tenant's entries charged in another order than their times
    tenant = a_name("t")
    late = book.charge(a_name("u"), 20, tenant=tenant)
    early = book.charge(a_name("u"), 2, tenant=tenant)
    middle = book.charge(a_name("u"), 11, tenant=tenant)
    # when the tenant's usage is listed
    entries = book.ledger.usage(ADMIN, book.period(tenant=tenant))
    # then the oldest comes first
    assert [e.job_id for e in entries] == [early, middle, late]


def test_pages_hold_the_same_entries_as_the_whole_report(book: Book) -> None:
    # given five entries of a tenant and one of another
    tenant = a_name("t")
    kept = {book.charge(a_name("u"), hour, tenant=tenant) for hour in range(5)}
    book.charge(a_name("u"), 1, tenant=a_name("t"))
    # when the tenant's usage is read two entries a page
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        entries, cursor = book.ledger.usage_page(ADMIN, book.period(tenant=tenant), 2, cursor)
        assert len(entries) <= 2
        seen += [e.job_id for e in entries]
        if cursor is None:
            break
    # then the pages hold each of its entries once, and nothing else
    assert sorted(seen) == sorted(kept)


def test_chargeback_of_a_project_keeps_only_its_groups(book: Book) -> None:
    # given a tenant's entries of two projects
    tenant, user = a_name("t"), a_name("u")
    book.charge(user, 1, tenant=tenant, project="vqe")
    book.charge(user, 2, tenant=tenant, project="vqe")
    book.charge(user, 3, tenant=tenant, project="qaoa")
    principal = enterprise(user, tenant)
    # when the chargeback is asked for the day, then for project vqe only
    every = book.ledger.chargeback(principal, book.at(0), book.at(24))
    vqe = book.ledger.chargeback(principal, book.at(0), book.at(24), project="vqe")
    # then the whole has both projects' groups, and the project's only its own, whole
    assert [(g["project"], g["jobs"]) for g in every] == [("qaoa", 1), ("vqe", 2)]
    assert [(g["project"], g["jobs"], g["cost"]) for g in vqe] == [("vqe", 2, "0.60")]


@pytest.mark.parametrize("tier_name", ["free", "professional"])
def test_the_ledger_refuses_users_below_enterprise(book: Book, tier_name: str) -> None:
    # given a user of a lower tier, in a tenant with an entry
    tenant, user = a_name("t"), a_name("u")
    book.charge(user, 1, tenant=tenant)
    caller = Principal(user_id=user, tier=tier(tier_name), key_id="k", tenant=tenant)
    # when they ask for their usage, then they are refused
    with pytest.raises(Forbidden) as refused:
        book.ledger.usage(caller, book.period())
    assert refused.value.error_code == "LEDGER_FORBIDDEN"


def test_an_enterprise_user_cannot_ask_for_another_tenant(book: Book) -> None:
    # given an entry of another tenant
    theirs = a_name("t")
    book.charge(a_name("u"), 1, tenant=theirs)
    # when an enterprise user of another tenant asks for it, then they are refused
    with pytest.raises(Forbidden) as refused:
        book.ledger.usage(enterprise(a_name("u"), a_name("t")), book.period(tenant=theirs))
    assert refused.value.error_code == "LEDGER_FORBIDDEN"
