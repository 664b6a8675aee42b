"""Users: created by the admin (`/admin/users`), and `/user/me` for the caller."""

from __future__ import annotations

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from shared.accounts.service import User
from shared.accounts.tiers import TierName
from shared.http import Auth, Operation, RequestContext, handle
from shared.services import services

bp = func.Blueprint()


class CreateUserRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "ada@example.com", "tier": "free"}]},
    )

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    tier: TierName = TierName.FREE


class UserView(BaseModel):
    user_id: str
    email: str
    tier: TierName
    created_at: str


class CreatedUserView(BaseModel):
    user_id: str
    email: str
    tier: TierName
    api_key: str = Field(description="Shown once; only its hash is stored")


class Me(BaseModel):
    user_id: str
    email: str
    tier: TierName
    daily_job_limit: int | None = Field(description="null: unlimited")
    max_qubits: int
    max_shots: int
    jobs_today: int
    jobs_total: int


CREATE_USER = Operation(
    "POST",
    "/admin/users",
    "Create a user and their API key",
    CreatedUserView,
    body=CreateUserRequest,
    status=201,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 409, 413, 422, 503),
    description="Admin key only. The API key in the answer is shown once.",
)
GET_USER = Operation(
    "GET",
    "/admin/users/{user_id}",
    "A user (no key material)",
    UserView,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 404, 503),
)
ME = Operation(
    "GET",
    "/user/me",
    "The caller's account, tier limits and job counts",
    Me,
    tag="account",
    errors=(401, 503),
)


@CREATE_USER.route(bp)
def create_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CREATE_USER, _create_user)


@GET_USER.route(bp)
def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(
        req, GET_USER, lambda ctx: _user_view(services().accounts.get_user(ctx.params["user_id"]))
    )


@ME.route(bp)
def me(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ME, _me)


def _user_view(user: User) -> UserView:
    return UserView(
        user_id=user.user_id, email=user.email, tier=user.tier, created_at=user.created_at
    )


def _create_user(ctx: RequestContext[CreateUserRequest]) -> CreatedUserView:
    created = services().accounts.create_user(ctx.body.email, ctx.body.tier)
    return CreatedUserView(
        user_id=created.user.user_id,
        email=created.user.email,
        tier=created.user.tier,
        api_key=created.api_key,
    )


def _me(ctx: RequestContext[None]) -> Me:
    svc = services()
    user = svc.accounts.get_user(ctx.user.user_id)
    usage = svc.jobs.usage(user.user_id)
    tier = ctx.user.tier
    return Me(
        user_id=user.user_id,
        email=user.email,
        tier=user.tier,
        daily_job_limit=tier.daily_jobs,
        max_qubits=tier.max_qubits,
        max_shots=tier.max_shots,
        jobs_today=usage.jobs_today,
        jobs_total=usage.jobs_total,
    )
