"""Budget reservations against real Azurite (reliability case 11): holds are atomic under
concurrency, a refusal moves no counter, and a hold is closed (given back or settled) once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from shared import clock
from shared.ledger.budgets import Budget, BudgetExceeded, BudgetHold, BudgetPeriod, Budgets
from shared.services import Services


def a_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def budgets(services_env: Services) -> Budgets:
    return services_env.ledger.reservations


def reserved(budgets: Budgets, budget: Budget) -> Decimal:
    return budgets.reserved(budget, clock.utcnow())


def reserve_all(
    budgets: Budgets, tenant: str, estimate: str, times: int
) -> tuple[list[BudgetHold], list[BudgetExceeded]]:
    def attempt(n: int) -> BudgetHold | BudgetExceeded:
        try:
            hold = budgets.reserve(tenant, "", Decimal(estimate), "USD", ref=f"u:job-{n}")
        except BudgetExceeded as refused:
            return refused
        assert hold is not None
        return hold

    with ThreadPoolExecutor(times) as pool:
        outcomes = list(pool.map(attempt, range(times)))
    holds = [o for o in outcomes if isinstance(o, BudgetHold)]
    return holds, [o for o in outcomes if isinstance(o, BudgetExceeded)]


@pytest.mark.parametrize(("estimate", "accepted"), [("80", 1), ("30", 3)])
def test_concurrent_reserves_never_overshoot_the_budget(
    budgets: Budgets, estimate: str, accepted: int
) -> None:
    # given a tenant with a daily budget of 100 USD
    tenant = a_tenant()
    budget = budgets.put(
        tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(100), currency="USD"
    )
    # when twenty jobs reserve their estimate at once
    holds, refused = reserve_all(budgets, tenant, estimate, 20)
    # then exactly as many as fit are accepted, and the counter holds their estimates
    assert len(holds) == accepted
    assert len(refused) == 20 - accepted
    assert reserved(budgets, budget) == accepted * Decimal(estimate)
    # and each refusal says which budget, what was asked and what is left
    extra = refused[0].extra
    assert (refused[0].error_code, extra["scope"], extra["currency"]) == (
        "BUDGET_EXCEEDED",
        f"tenant:{tenant}",
        "USD",
    )
    assert Decimal(extra["estimated_cost"]) == Decimal(estimate)
    assert Decimal(extra["remaining"]) == 100 - accepted * Decimal(estimate)


def test_a_refusal_by_the_project_budget_leaves_the_tenant_counter_unmoved(
    budgets: Budgets,
) -> None:
    # given a tenant budget of 100 and a project budget of 50, with 40 held by the project
    tenant = a_tenant()
    whole = budgets.put(tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(100), currency="USD")
    part = budgets.put(
        tenant, "vqe", period=BudgetPeriod.MONTHLY, limit=Decimal(50), currency="USD"
    )
    hold = budgets.reserve(tenant, "vqe", Decimal(40), "USD", ref="u:job-1")
    assert hold is not None and len(hold.counters) == 2
    assert (reserved(budgets, whole), reserved(budgets, part)) == (40, 40)

    # when the project asks for 20 more (the tenant has room, the project has not)
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve(tenant, "vqe", Decimal(20), "USD", ref="u:job-2")

    # then the project refuses, and neither counter moved
    assert refused.value.extra["scope"] == "project:vqe"
    assert refused.value.extra["committed"] == "40.00"
    assert (reserved(budgets, whole), reserved(budgets, part)) == (40, 40)
    # and a job of another project is held by the tenant budget only
    other = budgets.reserve(tenant, "qaoa", Decimal(20), "USD", ref="u:job-3")
    assert other is not None and len(other.counters) == 1
    assert (reserved(budgets, whole), reserved(budgets, part)) == (60, 40)


def test_a_release_gives_back_once_even_when_repeated(budgets: Budgets) -> None:
    # given a job holding 80 of a 100 budget
    tenant = a_tenant()
    budget = budgets.put(
        tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(100), currency="USD"
    )
    hold = budgets.reserve(tenant, "", Decimal(80), "USD", ref="u:job-1")
    assert hold is not None
    # and another holding 10
    assert budgets.reserve(tenant, "", Decimal(10), "USD", ref="u:job-2") is not None

    # when the first is released five times at once, then again (as its job row read it)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: budgets.release(hold, "u:job-1"), range(5)))
    again = budgets.release(BudgetHold.decode(hold.encode()), "u:job-1")

    # then it was given back once
    assert sorted(answers) == [False] * 4 + [True]
    assert again is False
    assert reserved(budgets, budget) == 10
    # and what was given back can be held again
    assert budgets.reserve(tenant, "", Decimal(90), "USD", ref="u:job-3") is not None
    assert reserved(budgets, budget) == 100


def test_a_settled_hold_counts_the_cost_and_cannot_be_given_back(budgets: Budgets) -> None:
    # given a job holding an estimate of 80
    tenant = a_tenant()
    budget = budgets.put(
        tenant, None, period=BudgetPeriod.MONTHLY, limit=Decimal(100), currency="USD"
    )
    hold = budgets.reserve(tenant, "", Decimal(80), "USD", ref="u:job-1")
    assert hold is not None

    # when it is charged 65 (twice: a redelivery), then released (a late cancel)
    assert budgets.settle(tenant, "", Decimal(65), "USD", "u:job-1", hold) is True
    assert budgets.settle(tenant, "", Decimal(65), "USD", "u:job-1", hold) is False
    assert budgets.release(hold, "u:job-1") is False

    # then the counter holds the cost
    assert reserved(budgets, budget) == 65
    # and a charge of a job that held nothing (accepted before holds) is counted once
    assert budgets.settle(tenant, "", Decimal(5), "USD", "u:old-job", None) is True
    assert budgets.settle(tenant, "", Decimal(5), "USD", "u:old-job", None) is False
    assert reserved(budgets, budget) == 70
    with pytest.raises(BudgetExceeded):
        budgets.reserve(tenant, "", Decimal(31), "USD", ref="u:job-2")


def test_a_budget_of_another_currency_does_not_apply(budgets: Budgets) -> None:
    # given a tenant whose only budget is 1 EUR
    tenant = a_tenant()
    budget = budgets.put(tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(1), currency="EUR")
    # when a job priced 80 USD reserves
    hold = budgets.reserve(tenant, "", Decimal(80), "USD", ref="u:job-1")
    # then nothing applies: no hold, no counter
    assert hold is None
    assert reserved(budgets, budget) == 0
    assert budgets.settle(tenant, "", Decimal(80), "USD", "u:job-1", None) is False


def test_nothing_is_held_without_a_tenant_an_estimate_or_a_budget(budgets: Budgets) -> None:
    tenant = a_tenant()
    assert budgets.reserve(tenant, "vqe", Decimal(80), "USD", ref="u:job-1") is None
    budgets.put(tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(1), currency="USD")
    assert budgets.reserve("", "vqe", Decimal(80), "USD", ref="u:job-1") is None
    assert budgets.reserve(tenant, "vqe", Decimal(0), "USD", ref="u:job-1") is None


def test_counters_and_markers_are_not_listed_as_budgets(budgets: Budgets) -> None:
    # given a budget with a hold, released
    tenant = a_tenant()
    budgets.put(tenant, None, period=BudgetPeriod.DAILY, limit=Decimal(100), currency="USD")
    budgets.put(tenant, "vqe", period=BudgetPeriod.DAILY, limit=Decimal(50), currency="USD")
    hold = budgets.reserve(tenant, "vqe", Decimal(10), "USD", ref="u:job-1")
    assert hold is not None and budgets.release(hold, "u:job-1")
    # when the tenant's budgets are listed, then only the budget rows come back
    assert sorted(b.scope for b in budgets.listed(tenant)) == [
        "project:vqe",
        f"tenant:{tenant}",
    ]


def test_a_hold_is_kept_as_text_on_the_job_row() -> None:
    hold = BudgetHold("acme", "USD", Decimal("80.125"), ("use:tenant:USD:daily:20261115",))
    assert BudgetHold.decode(hold.encode()) == hold
    with pytest.raises(ValueError):
        BudgetHold.decode('{"tenant": "acme"}')
