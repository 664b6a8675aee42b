"""Request and response models of the account API (`/admin/users...`, `/user/...`) and of the
tier table (`/pricing`); the OpenAPI spec is generated from these."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import clock
from shared.accounts.quota import QuotaUse
from shared.accounts.tiers import CUSTOM, UNLIMITED, Tier, TierName

_NAME = r"^[A-Za-z0-9._-]{1,64}$"


class CreateUserRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "ada@example.com", "tier": "free"}]},
    )

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    tier: TierName = TierName.FREE
    tenant: str = Field("", pattern=r"^([A-Za-z0-9._-]{1,64})?$", description="The user's tenant")


class UpdateUserRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tier": "enterprise", "tenant": "acme"}]},
    )

    tier: TierName | None = Field(None, description="The new tier (from the next request)")
    tenant: str | None = Field(
        None, pattern=r"^([A-Za-z0-9._-]{1,64})?$", description='The new tenant; "" for none'
    )


class UserView(BaseModel):
    user_id: str
    email: str
    tier: TierName
    tenant: str
    created_at: str


class UserList(BaseModel):
    users: list[UserView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class UserListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: TierName | None = Field(None, description="Only users of this tier")
    tenant: str | None = Field(None, pattern=_NAME, description="Only users of this tenant")
    page_size: int = Field(50, ge=1, le=500, description="Users per page")
    cursor: str | None = Field(None, max_length=2000, description="`next_cursor` of a page")


class CreatedUserView(BaseModel):
    user_id: str
    email: str
    tier: TierName
    tenant: str
    api_key: str = Field(description="Shown once; only its hash is stored")


class KeyView(BaseModel):
    key_id: str = Field(description="The key's public id (what logs show)")
    created_at: str
    revoked: bool


class KeyList(BaseModel):
    keys: list[KeyView]


class IssuedKey(KeyView):
    api_key: str = Field(description="Shown once; only its hash is stored")


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(30, ge=1, le=366, description="How many days back (UTC), today included")

    def since(self) -> str:
        """The start of the window: midnight UTC `days - 1` days before today."""
        today = clock.utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        return clock.iso(today - timedelta(days=self.days - 1))


class QuotaView(BaseModel):
    day: str
    daily_limit: int | Literal["unlimited"] = Field(examples=[10, "unlimited"])
    used: int = Field(description="Jobs reserved today (a job that never ran is given back)")
    remaining: int | Literal["unlimited"] = Field(examples=[9, "unlimited"])
    resets_at: str


class UsageRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    currency: str
    jobs: int
    shots: int
    cost: str = Field(description="Charged")
    list_cost: str = Field(description="What the devices would have cost (for emulated runs)")


class UsageView(BaseModel):
    since: str
    days: list[UsageRow] = Field(description="Per UTC day (`day`) and currency")
    backends: list[UsageRow] = Field(description="Per backend (`backend`) and currency")
    suppliers: list[UsageRow] = Field(description="Per supplier (`supplier`) and currency")
    totals: list[UsageRow]
    quota: QuotaView


class Me(BaseModel):
    user_id: str
    email: str
    tier: TierName
    daily_job_limit: int | Literal["unlimited"] = Field(
        description="Jobs per UTC day, or `unlimited`", examples=[1000, "unlimited"]
    )
    max_qubits: int
    max_shots: int
    jobs_today: int
    jobs_total: int


# -- the tier table (`GET /pricing`) --------------------------------------------------------------


class TierPrice(BaseModel):
    name: TierName
    daily_jobs: int | Literal["unlimited"] = Field(
        description="Jobs per UTC day, or `unlimited`", examples=[10, "unlimited"]
    )
    max_qubits: int = Field(description="Qubits one circuit may use", examples=[20])
    max_shots: int = Field(description="Shots one job may ask for", examples=[1024])
    requests_per_minute: int = Field(
        description="Requests per minute per API key (rate limit)", examples=[60]
    )
    price_eur: int | Literal["custom"] = Field(
        description="Price in EUR per month, or `custom` (set by contract)",
        examples=[0, 99, "custom"],
    )


class Pricing(BaseModel):
    currency: str = Field(description="The currency of every price", examples=["EUR"])
    period: str = Field(description="What one price pays for", examples=["month"])
    tiers: list[TierPrice] = Field(description="Every tier, as the limits are enforced")


# -- converters -----------------------------------------------------------------------------------


def quota_view(quota: QuotaUse) -> QuotaView:
    return QuotaView(
        day=quota.day,
        daily_limit=UNLIMITED if quota.limit is None else quota.limit,
        used=quota.used,
        remaining=UNLIMITED if quota.remaining is None else quota.remaining,
        resets_at=quota.resets_at,
    )


def pricing_view(tiers: Iterable[Tier]) -> Pricing:
    """The tier table as `GET /pricing` publishes it: EUR per month."""
    return Pricing(
        currency="EUR",
        period="month",
        tiers=[
            TierPrice(
                name=tier.name,
                daily_jobs=UNLIMITED if tier.daily_jobs is None else tier.daily_jobs,
                max_qubits=tier.max_qubits,
                max_shots=tier.max_shots,
                requests_per_minute=tier.requests_per_minute,
                price_eur=CUSTOM if tier.price_eur is None else tier.price_eur,
            )
            for tier in tiers
        ],
    )
