"""Users: administered with the admin key (`/admin/users...`); `/user/me` and `/user/usage`
for the caller."""

from __future__ import annotations

from dataclasses import asdict

import azure.functions as func

from shared.accounts.schemas import (
    CreatedUserView,
    CreateUserRequest,
    IssuedKey,
    KeyList,
    KeyView,
    Me,
    UpdateUserRequest,
    UsageQuery,
    UsageView,
    UserList,
    UserListQuery,
    UserView,
    quota_view,
)
from shared.accounts.service import KeyInfo, User
from shared.accounts.tiers import UNLIMITED
from shared.http import Auth, Operation, RequestContext, handle
from shared.services import services

bp = func.Blueprint()


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
    description="Admin key only. The user's tier, tenant and creation time; never a key "
    "or its hash.",
)
LIST_USERS = Operation(
    "GET",
    "/admin/users",
    "Users, a page at a time",
    UserList,
    auth=Auth.ADMIN,
    tag="admin",
    query=UserListQuery,
    errors=(401, 403, 422, 503),
    description="Admin key only. Filter by `tier` or `tenant`; pass `next_cursor` back as `cursor` "
    "for the next page (null on the last).",
)
UPDATE_USER = Operation(
    "PATCH",
    "/admin/users/{user_id}",
    "Change a user's tier or tenant (from their next request)",
    UserView,
    body=UpdateUserRequest,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 404, 413, 422, 503),
    description="Admin key only. Only the fields given change; the new tier's limits apply "
    "from the user's next request.",
)
LIST_KEYS = Operation(
    "GET",
    "/admin/users/{user_id}/keys",
    "A user's API keys (public ids only)",
    KeyList,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 404, 503),
    description="Admin key only. Each key's public id (the part logs show), when it was made and "
    "whether it is revoked.",
)
ISSUE_KEY = Operation(
    "POST",
    "/admin/users/{user_id}/keys",
    "Issue another API key to a user",
    IssuedKey,
    status=201,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 404, 503),
    description="The user's other keys keep working. The key is shown once.",
)
REVOKE_KEY = Operation(
    "DELETE",
    "/admin/users/{user_id}/keys/{key_id}",
    "Revoke a user's API key (refused from the next request)",
    KeyView,
    auth=Auth.ADMIN,
    tag="admin",
    errors=(401, 403, 404, 503),
    description="Admin key only. The key answers 401 from its next request; the user's "
    "other keys keep working. Revoking twice is harmless.",
)
USAGE = Operation(
    "GET",
    "/user/usage",
    "The caller's jobs, shots and cost per day, backend and supplier, and today's quota",
    UsageView,
    tag="account",
    query=UsageQuery,
    errors=(401, 422, 429, 503),
    description="From the ledger: one entry per completed job. `cost` is what was charged; "
    "`list_cost` what the backends' devices would have cost by the price book (for an "
    "emulated run, what a real device would have cost).",
)
ME = Operation(
    "GET",
    "/user/me",
    "The caller's account, tier limits and job counts",
    Me,
    tag="account",
    errors=(401, 503),
    description="Who the key belongs to, its tier with its daily job limit, qubits and shots, "
    "and how many jobs it ran today and in all.",
)


def _azure_door(op: Operation) -> Operation:
    """`op` at `/api/v1` + its path too. The Functions host keeps `/admin/...` for its own
    admin API (it refuses app routes that begin with `admin` and answers those paths itself),
    so in Azure the reference's `/admin/...` paths never reach the app: these doors do."""
    return op.door(
        f"/api/v1{op.path}",
        f"`{op.method} {op.path}` under `/api/v1`, the path that works in Azure "
        "(where the Functions host keeps `/admin/...` for itself).",
    )


V1_CREATE_USER = _azure_door(CREATE_USER)
V1_GET_USER = _azure_door(GET_USER)
V1_LIST_USERS = _azure_door(LIST_USERS)
V1_UPDATE_USER = _azure_door(UPDATE_USER)
V1_LIST_KEYS = _azure_door(LIST_KEYS)
V1_ISSUE_KEY = _azure_door(ISSUE_KEY)
V1_REVOKE_KEY = _azure_door(REVOKE_KEY)


@CREATE_USER.route(bp)
def create_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, CREATE_USER, _create_user)


@V1_CREATE_USER.route(bp)
def v1_create_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_CREATE_USER, _create_user)


@GET_USER.route(bp)
def get_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, GET_USER, _get_user)


@V1_GET_USER.route(bp)
def v1_get_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_GET_USER, _get_user)


@ME.route(bp)
def me(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ME, _me)


@LIST_USERS.route(bp)
def list_users(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LIST_USERS, _list_users)


@V1_LIST_USERS.route(bp)
def v1_list_users(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_LIST_USERS, _list_users)


@UPDATE_USER.route(bp)
def update_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, UPDATE_USER, _update_user)


@V1_UPDATE_USER.route(bp)
def v1_update_user(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_UPDATE_USER, _update_user)


@LIST_KEYS.route(bp)
def list_keys(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, LIST_KEYS, _list_keys)


@V1_LIST_KEYS.route(bp)
def v1_list_keys(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_LIST_KEYS, _list_keys)


@ISSUE_KEY.route(bp)
def issue_key(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, ISSUE_KEY, _issue_key)


@V1_ISSUE_KEY.route(bp)
def v1_issue_key(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_ISSUE_KEY, _issue_key)


@REVOKE_KEY.route(bp)
def revoke_key(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, REVOKE_KEY, _revoke_key)


@V1_REVOKE_KEY.route(bp)
def v1_revoke_key(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, V1_REVOKE_KEY, _revoke_key)


@USAGE.route(bp)
def user_usage(req: func.HttpRequest) -> func.HttpResponse:
    return handle(req, USAGE, _usage)


def _user_view(user: User) -> UserView:
    return UserView.model_validate(user, from_attributes=True)


def _key(info: KeyInfo) -> KeyView:
    return KeyView.model_validate(info, from_attributes=True)


def _get_user(ctx: RequestContext[None]) -> UserView:
    return _user_view(services().accounts.get_user(ctx.params["user_id"]))


def _list_keys(ctx: RequestContext[None]) -> KeyList:
    return KeyList(keys=[_key(k) for k in services().accounts.list_keys(ctx.params["user_id"])])


def _revoke_key(ctx: RequestContext[None]) -> KeyView:
    return _key(services().accounts.revoke_key(ctx.params["user_id"], ctx.params["key_id"]))


def _create_user(ctx: RequestContext[CreateUserRequest]) -> CreatedUserView:
    created = services().accounts.create_user(ctx.body.email, ctx.body.tier, ctx.body.tenant)
    return CreatedUserView(
        user_id=created.user.user_id,
        email=created.user.email,
        tier=created.user.tier,
        tenant=created.user.tenant,
        api_key=created.api_key,
    )


def _list_users(ctx: RequestContext[None]) -> UserList:
    q: UserListQuery = ctx.query
    found = services().accounts.list_users(
        tier_name=q.tier, tenant=q.tenant, page_size=q.page_size, cursor=q.cursor
    )
    return UserList(users=[_user_view(u) for u in found.users], next_cursor=found.next_cursor)


def _update_user(ctx: RequestContext[UpdateUserRequest]) -> UserView:
    user = services().accounts.update_user(
        ctx.params["user_id"], tier_name=ctx.body.tier, tenant=ctx.body.tenant
    )
    return _user_view(user)


def _issue_key(ctx: RequestContext[None]) -> IssuedKey:
    info, key = services().accounts.issue_key(ctx.params["user_id"])
    return IssuedKey(**asdict(info), api_key=key)


def _usage(ctx: RequestContext[None]) -> UsageView:
    q: UsageQuery = ctx.query
    svc = services()
    since = q.since()
    found = svc.ledger.user_usage(ctx.user.user_id, since)
    quota = svc.quotas.use(ctx.user.user_id, ctx.user.tier)
    return UsageView(since=since, **found, quota=quota_view(quota))


def _me(ctx: RequestContext[None]) -> Me:
    svc = services()
    user = svc.accounts.get_user(ctx.user.user_id)
    usage = svc.jobs.usage(user.user_id)
    tier = ctx.user.tier
    return Me(
        user_id=user.user_id,
        email=user.email,
        tier=user.tier,
        daily_job_limit=UNLIMITED if tier.daily_jobs is None else tier.daily_jobs,
        max_qubits=tier.max_qubits,
        max_shots=tier.max_shots,
        jobs_today=usage.jobs_today,
        jobs_total=usage.jobs_total,
    )
