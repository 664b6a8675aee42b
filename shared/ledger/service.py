"""Charges, usage, chargeback and budgets.

A completed job is charged once (`charge`): what it cost (nothing unless a supplier's device
ran it), what its backend's device would have cost by the price book, and where that price came
from. Budgets per tenant or per project (`shared.ledger.budgets`, `Ledger.reservations`) hold a
cloud job's estimate from submit, before anything is sent to a supplier.

Who sees what: the admin key sees every entry; an enterprise user sees their tenant's (their
own, when they belong to no tenant); everyone else is refused (403 LEDGER_FORBIDDEN).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared import clock, signing
from shared.accounts.service import Principal
from shared.accounts.tiers import TierName
from shared.config import SettingsError
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.ledger.budgets import (
    Budget,
    BudgetExceeded,
    BudgetPeriod,
    Budgets,
    BudgetStatus,
)
from shared.ledger.evidence import build_bundle
from shared.ledger.models import LedgerEntry, amount, shown_backend
from shared.ledger.repository import LedgerRepository
from shared.pricing.costs import Cost
from shared.storage import Storage
from shared.storage.clients import EVIDENCE_CONTAINER

__all__ = [  # the budget names are re-exported for their older importers
    "Budget",
    "BudgetExceeded",
    "BudgetPeriod",
    "BudgetStatus",
    "Evidence",
    "Ledger",
    "UsageFilter",
    "amount",
]

logger = logging.getLogger(__name__)

LOCAL_SUPPLIER = "local"
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # tenants and projects
_EVIDENCE_ID = re.compile(r"^ev_[0-9]{8}_[0-9a-f]{16}$")


@dataclass(frozen=True)
class UsageFilter:
    """Which entries a usage report or a chargeback holds: those charged in [since, until),
    and, when given, of `tenant`, of `project` and of `backend` (by any of its names)."""

    since: str
    until: str
    tenant: str | None = None
    project: str | None = None
    backend: str | None = None


@dataclass(frozen=True)
class Evidence:
    bundle_id: str
    sha256: str
    signature: str
    public_key: str
    ephemeral_key: bool
    entries: int
    created_at: str


def charge_entry(
    *,
    user_id: str,
    job_id: str,
    tenant: str,
    project: str,
    supplier: str | None,
    backend: str,
    mode: str,
    shots: int,
    cost: Cost,
    time: str | None = None,
) -> LedgerEntry:
    """The unsealed ledger entry charging job `job_id` `cost` at `time` (ISO 8601; now when
    not given)."""
    return LedgerEntry(
        user_id=user_id,
        job_id=job_id,
        seq=0,
        time=time or clock.now_iso(),
        tenant=tenant,
        project=project,
        supplier=supplier or LOCAL_SUPPLIER,
        backend=backend,
        mode=mode,
        shots=shots,
        cost=amount(cost.cost),
        currency=cost.currency,
        list_cost=amount(cost.list_cost),
        price_source=cost.price_source,
    )


class Ledger:
    def __init__(
        self, storage: Storage, repo: LedgerRepository, signing_key: str | None = None
    ) -> None:
        self._storage = storage
        self.repo = repo
        self.reservations = Budgets(storage)  # budget rows, their counters and holds
        # Evidence bundles are signed with the configured key, else one made for this process
        # (its bundles say so: a verifier then has only the key printed in the bundle).
        self._ephemeral = signing_key is None
        try:
            self._key = (
                signing.new_private_key()
                if signing_key is None
                else signing.private_key(signing_key)
            )
        except signing.BadKey as exc:
            raise SettingsError(f"QCOS_LEDGER_SIGNING_KEY: {exc}") from None
        if self._ephemeral:
            logger.warning(
                "QCOS_LEDGER_SIGNING_KEY is not set: evidence is signed with a key "
                "made for this process (public key %s)",
                signing.public_b64(self._key),
            )

    # -- charges --------------------------------------------------------------------------------

    def charge(self, entry: LedgerEntry) -> LedgerEntry | None:
        """Record a job's charge (`charge_entry`) once, unsealed (`seal` chains it); None when
        it was charged already (a redelivery, or a racing worker). Storage failures raise
        (the caller retries)."""
        return self._charged(self.repo.insert(entry))

    def charge_later(self, entry: LedgerEntry, then: Callable[[], None]) -> None:
        """`charge`, after the answer, for a job whose row records the charge as owed; `then`
        runs once it is in the ledger (`LedgerRepository.insert_later`)."""

        def landed(stored: LedgerEntry | None) -> None:
            self._charged(stored)
            then()

        self.repo.insert_later(entry, landed)

    @staticmethod
    def _charged(stored: LedgerEntry | None) -> LedgerEntry | None:
        if stored is not None:
            logger.info(
                "charged job %s of %s: %s %s",
                stored.job_id,
                stored.user_id,
                stored.cost,
                stored.currency,
            )
        return stored

    def seal(self) -> int:
        """Chain every unsealed entry (the recovery timer's part); how many were sealed."""
        return self.repo.seal_pending()

    # -- who sees what --------------------------------------------------------------------------

    @staticmethod
    def visible(principal: Principal, tenant: str | None = None) -> dict[str, str]:
        """The filters that keep `principal` to the entries they may see (and to `tenant` when
        asked). Raises `Forbidden(LEDGER_FORBIDDEN)` for anyone but the admin and enterprise
        users, and for an enterprise user asking for another tenant."""
        if principal.is_admin:
            return {"tenant": tenant} if tenant is not None else {}
        if principal.tier.name is not TierName.ENTERPRISE:
            raise Forbidden(
                "The ledger is for enterprise users and admins", error_code="LEDGER_FORBIDDEN"
            )
        if tenant is not None and tenant != principal.tenant:
            raise Forbidden(
                "You can see only your own tenant's ledger", error_code="LEDGER_FORBIDDEN"
            )
        if principal.tenant:
            return {"tenant": principal.tenant}
        return {"user_id": principal.user_id}

    def _filters(self, principal: Principal, wanted: UsageFilter) -> dict[str, str]:
        """The repository's filters for the entries of `wanted` that `principal` may see
        (`visible`: raises `Forbidden` as it does)."""
        filters = self.visible(principal, wanted.tenant)
        filters |= {"since": wanted.since, "until": wanted.until}
        if wanted.project is not None:
            filters["project"] = wanted.project
        if wanted.backend is not None:
            filters["backend"] = wanted.backend
        return filters

    # -- usage ----------------------------------------------------------------------------------

    def usage(self, principal: Principal, wanted: UsageFilter) -> list[LedgerEntry]:
        """Every entry of `wanted` the caller may see, oldest first (then by user and chain
        position). Raises `Forbidden(LEDGER_FORBIDDEN)` as `visible` does."""
        entries = self.repo.entries(**self._filters(principal, wanted))
        return sorted(entries, key=lambda e: (e.time, e.user_id, e.seq))

    def usage_page(
        self, principal: Principal, wanted: UsageFilter, page_size: int, cursor: str | None
    ) -> tuple[list[LedgerEntry], str | None]:
        """One page of `usage` in storage order (user, then job id), and the cursor of the
        next page (None on the last)."""
        return self.repo.page(page_size, cursor, **self._filters(principal, wanted))

    # -- chargeback -----------------------------------------------------------------------------

    def chargeback(
        self,
        principal: Principal,
        since: str,
        until: str,
        tenant: str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Cost per (tenant, project, currency) over [since, until), of `project` only when
        given."""
        filters = self._filters(principal, UsageFilter(since, until, tenant, project))
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for entry in self.repo.entries(**filters):
            _add(groups.setdefault((entry.tenant, entry.project, entry.currency), _zero()), entry)
        return [
            {"tenant": t, "project": p, "currency": c, **_shown(g)}
            for (t, p, c), g in sorted(groups.items())
        ]

    # -- the caller's own usage -----------------------------------------------------------------

    def user_usage(self, user_id: str, since: str) -> dict[str, Any]:
        """`user_id`'s charged jobs since `since`, per day, per backend and per supplier."""
        by: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "day": {},
            "backend": {},
            "supplier": {},
        }
        totals: dict[str, dict[str, Any]] = {}
        for entry in self.repo.entries(user_id=user_id, since=since):
            keys = {
                "day": entry.time[:10],
                "backend": shown_backend(entry),
                "supplier": entry.supplier,
            }
            for what, key in keys.items():
                _add(by[what].setdefault((key, entry.currency), _zero()), entry)
            _add(totals.setdefault(entry.currency, _zero()), entry)
        return {
            "days": _rows(by["day"], "day"),
            "backends": _rows(by["backend"], "backend"),
            "suppliers": _rows(by["supplier"], "supplier"),
            "totals": [{"currency": c, **_shown(t)} for c, t in sorted(totals.items())],
        }

    # -- evidence -------------------------------------------------------------------------------

    def create_evidence(
        self, principal: Principal, since: str, until: str, tenant: str | None = None
    ) -> Evidence:
        """Export the entries the caller may see in [since, until) as a signed bundle, stored
        in Blob (`evidence/<id>.json`). The stored chains are verified while exporting: a
        bundle of a tampered ledger records its breaks and fails verification."""
        filters = self.visible(principal, tenant)
        self.repo.seal_pending(**filters)  # a bundle holds sealed entries only
        selected = sorted(  # an entry that landed after the seal waits for the next bundle
            (e for e in self.repo.entries(**filters, since=since, until=until) if e.seq != 0),
            key=lambda e: (e.user_id, e.seq),
        )
        users = sorted({e.user_id for e in selected})
        chains = {user: self.repo.chain(user) for user in users}
        heads = {}
        for user in users:
            head = self.repo.head(user)
            if head is not None:
                heads[user] = (head.seq, head.hash)
        created_at = clock.now_iso()
        bundle_id = f"ev_{created_at[:10].replace('-', '')}_{secrets.token_hex(8)}"
        bundle = build_bundle(
            selected,
            chains,
            bundle_id=bundle_id,
            created_at=created_at,
            period_from=since,
            period_to=until,
            tenant=filters.get("tenant"),
            key=self._key,
            key_ephemeral=self._ephemeral,
            heads=heads,
        )
        data = json.dumps(bundle, indent=1, sort_keys=True).encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        self._evidence.upload_blob(
            f"{bundle_id}.json",
            data,
            overwrite=False,
            metadata={"scope": _scope_of(filters), "sha256": digest},
        )
        logger.info("evidence %s: %d entries for %s", bundle_id, len(selected), _scope_of(filters))
        return Evidence(
            bundle_id=bundle_id,
            sha256=digest,
            signature=str(bundle["signature"]),
            public_key=signing.public_b64(self._key),
            ephemeral_key=self._ephemeral,
            entries=len(selected),
            created_at=created_at,
        )

    def evidence(self, principal: Principal, bundle_id: str) -> bytes:
        """The stored bundle, byte for byte. `NotFound(EVIDENCE_NOT_FOUND)` for an unknown id
        or one the caller may not see (never 403: ids are not disclosed)."""
        from azure.core.exceptions import ResourceNotFoundError

        missing = NotFound(f"Evidence {bundle_id} not found", error_code="EVIDENCE_NOT_FOUND")
        filters = self.visible(principal)
        if not _EVIDENCE_ID.match(bundle_id):
            raise missing
        try:
            blob = self._evidence.get_blob_client(f"{bundle_id}.json")
            downloaded = blob.download_blob()
        except ResourceNotFoundError:
            raise missing from None
        scope = downloaded.properties.metadata.get("scope", "")
        if not principal.is_admin and scope != _scope_of(filters):
            raise missing
        return bytes(downloaded.readall())

    # -- budgets --------------------------------------------------------------------------------

    def put_budget(
        self,
        principal: Principal,
        scope: str,
        *,
        period: BudgetPeriod,
        limit: Decimal,
        currency: str,
        tenant: str | None = None,
    ) -> BudgetStatus:
        """Set the budget of `scope` (`tenant:<tenant>` or `project:<project>`, the project
        within the caller's tenant, or within `tenant` for the admin)."""
        owner, project = self._scope(principal, scope, tenant)
        budget = self.reservations.put(
            owner, project, period=period, limit=limit, currency=currency
        )
        return self._status(budget)

    def put_usd_budget(
        self,
        principal: Principal,
        *,
        period: BudgetPeriod,
        limit: Decimal,
        tenant: str | None = None,
        project: str | None = None,
    ) -> BudgetStatus:
        """Set a USD budget the way softqcos-sdk asks for one: of `project` when given (within
        `tenant`, else the caller's tenant), else of `tenant`, else of the caller's tenant.
        Raises `Forbidden` first (as `visible`), then `ValidationFailed` when there is no
        tenant to name."""
        self.visible(principal, tenant)  # 403 before anything else
        owner = tenant or principal.tenant
        if project is None and not owner:
            raise ValidationFailed("you belong to no tenant: give `tenant_id` or `project_id`")
        scope = f"project:{project}" if project else f"tenant:{owner}"
        return self.put_budget(
            principal, scope, period=period, limit=limit, currency="USD", tenant=tenant
        )

    def budgets(self, principal: Principal) -> list[BudgetStatus]:
        """The budgets the caller may see, with what was spent and what is reserved in their
        current period."""
        filters = self.visible(principal)
        if "user_id" in filters:
            return []  # budgets belong to tenants
        return [self._status(b) for b in self.reservations.listed(filters.get("tenant"))]

    def _status(self, budget: Budget) -> BudgetStatus:
        now = clock.utcnow()
        start, end = budget.period.bounds(now)
        filters = {
            "tenant": budget.tenant,
            "currency": budget.currency,
            "since": clock.iso(start),
            "until": clock.iso(end),
        }
        if budget.project:
            filters["project"] = budget.project
        spent = sum((Decimal(e.cost) for e in self.repo.entries(**filters)), Decimal(0))
        reserved = self.reservations.reserved(budget, now)
        return BudgetStatus(budget, spent, clock.iso(start), clock.iso(end), reserved)

    def _scope(
        self, principal: Principal, scope: str, tenant: str | None
    ) -> tuple[str, str | None]:
        kind, _, name = scope.partition(":")
        if kind not in ("tenant", "project") or not NAME.match(name):
            raise ValidationFailed(
                "scope must be tenant:<tenant> or project:<project> (letters, digits, . _ -)"
            )
        if kind == "tenant":
            owner, project = name, None
        else:
            owner, project = (tenant if principal.is_admin else principal.tenant) or "", name
            if not owner:
                raise ValidationFailed(
                    "a project budget belongs to a tenant: give `tenant`"
                    if principal.is_admin
                    else "you belong to no tenant, so you cannot set budgets"
                )
        self.visible(principal, owner)  # refuses another tenant's budget
        return owner, project

    @property
    def _evidence(self) -> Any:
        return self._storage.container(EVIDENCE_CONTAINER)


def _scope_of(filters: Mapping[str, str]) -> str:
    """Who a bundle was made for: `tenant:<id>`, `user:<id>` or `all`."""
    if "tenant" in filters:
        return f"tenant:{filters['tenant']}"
    if "user_id" in filters:
        return f"user:{filters['user_id']}"
    return "all"


def _zero() -> dict[str, Any]:
    return {"jobs": 0, "shots": 0, "cost": Decimal(0), "list_cost": Decimal(0)}


def _add(total: dict[str, Any], entry: LedgerEntry) -> None:
    total["jobs"] += 1
    total["shots"] += entry.shots
    total["cost"] += Decimal(entry.cost)
    total["list_cost"] += Decimal(entry.list_cost)


def _shown(total: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "jobs": total["jobs"],
        "shots": total["shots"],
        "cost": amount(total["cost"]),
        "list_cost": amount(total["list_cost"]),
    }


def _rows(groups: Mapping[tuple[str, str], Mapping[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        {name: key, "currency": currency, **_shown(total)}
        for (key, currency), total in sorted(groups.items())
    ]
