"""What the benchmarks share: the app's root and a Bell circuit, nearest-rank percentiles, JSON
over `http.client`, a user made through `POST /admin/users`, and the gateway's environment
under `funchost.testing.FuncHost` on `funchost.testing.Azurite`.

Not a benchmark: `make bench` runs `bench/[!_]*.py`, which the leading underscore leaves out.
The scripts `import _common`: `python bench/x.py` puts `bench/` first on sys.path, and mypy,
finding no `__init__.py` in `bench/`, checks its files as top-level modules found the same way.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from funchost.testing import Azurite, FuncHost

ROOT = Path(__file__).resolve().parent.parent
BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n"
)


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (seconds) in ms, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request on `conn` with `body` as JSON; the status and the answer decoded from JSON,
    the answer as text where it is not JSON (a plain-text route), None where it is empty."""
    payload = json.dumps(body).encode() if body is not None else None
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=payload, headers=all_headers)
    resp = conn.getresponse()
    data = resp.read()
    try:
        return resp.status, json.loads(data) if data else None
    except ValueError:
        return resp.status, data.decode(errors="replace")


def create_user(conn: http.client.HTTPConnection, email: str, admin_key: str) -> str:
    """A new enterprise-tier user made with `admin_key`; its API key."""
    status, body = call(
        conn, "POST", "/admin/users", {"email": email, "tier": "enterprise"},
        {"X-API-Key": admin_key},
    )
    if status != 201:
        raise RuntimeError(f"POST /admin/users answered {status}: {body}")
    return str(body["api_key"])


def gateway_env(azurite: Azurite, admin_key: str) -> dict[str, str]:
    """The gateway's environment: its storage on `azurite`, `admin_key` for `/admin/...`."""
    return {"AzureWebJobsStorage": azurite.connection_string, "QCOS_ADMIN_API_KEY": admin_key}


def gateway_host(azurite: Azurite, admin_key: str) -> FuncHost:
    """The app at ROOT under funchost with `gateway_env`; `with` starts and stops it."""
    return FuncHost(ROOT, env=gateway_env(azurite, admin_key))
