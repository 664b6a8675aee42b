"""The one owner of Table, Queue and Blob clients.

The account is reached with a connection string (`UseDevelopmentStorage=true` means Azurite on
its default ports) or, in Azure, with identity-based settings (`AzureWebJobsStorage__accountName`
and the app's managed identity). Clients are built once per process and each table, queue and
container is created on first use. Retries are short: a request that cannot reach storage
answers 503 within about a second instead of hanging in the SDK's default back-off.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.core.exceptions import ResourceExistsError

from shared.config import StorageSettings
from shared.errors import ServiceUnavailable

DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_DEV_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={_DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{DEV_ACCOUNT};"
)

# Names the app uses; infra creates the same ones.
JOBS_TABLE = "jobs"
USERS_TABLE = "users"
API_KEYS_TABLE = "apikeys"
STATS_TABLE = "jobstats"
QUOTAS_TABLE = "quotas"
LEDGER_TABLE = "ledger"
BUDGETS_TABLE = "budgets"
IDEMPOTENCY_TABLE = "idempotency"
WEBHOOKS_TABLE = "webhooks"
WEBHOOK_DELIVERIES_TABLE = "webhookdeliveries"
JOBS_QUEUE = "jobs"
JOBS_POISON_QUEUE = "jobs-poison"
WEBHOOK_DELIVERIES_QUEUE = "webhook-deliveries"
WEBHOOK_DELIVERIES_POISON_QUEUE = "webhook-deliveries-poison"
CIRCUITS_CONTAINER = "circuits"
RESULTS_CONTAINER = "results"
EVIDENCE_CONTAINER = "evidence"

# Seconds to connect and to wait for an answer. They belong to the transport: a client handed a
# transport of ours never passes its own timeout keywords on to it.
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 30


class StorageNotConfigured(ServiceUnavailable):
    """No storage account is configured (AzureWebJobsStorage or its __accountName form)."""

    code = "STORAGE_NOT_CONFIGURED"


def _connection_string(settings: StorageSettings) -> str | None:
    conn = settings.connection_string
    if conn and conn.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
        return _DEV_CONNECTION
    return conn


class Storage:
    """Lazily built clients for one storage account; safe to share between threads."""

    def __init__(self, settings: StorageSettings) -> None:
        if not settings.configured:
            raise StorageNotConfigured(
                "set AzureWebJobsStorage (UseDevelopmentStorage=true for Azurite) "
                "or AzureWebJobsStorage__accountName"
            )
        self._settings = settings
        self._conn = _connection_string(settings)
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._credential: Any = None

    # -- clients --------------------------------------------------------------------------------

    def table(self, name: str) -> Any:
        """A `TableClient` for `name`; the table exists once this returns."""
        return self._get("table", name)

    def queue(self, name: str) -> Any:
        """A `QueueClient` for `name` that base64-encodes, as the queue trigger expects."""
        return self._get("queue", name)

    def container(self, name: str) -> Any:
        """A `ContainerClient` for `name`; the container exists once this returns."""
        return self._get("container", name)

    def queue_unchecked(self, name: str) -> Any:
        """A `QueueClient` for `name` without creating it (for probes that must not write)."""
        return self._build("queue", name)

    def _get(self, kind: str, name: str) -> Any:
        key = (kind, name)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._build(kind, name)
                _ensure(kind, client)
                self._clients[key] = client
        return client

    def _build(self, kind: str, name: str) -> Any:
        # The client's own URL decides which proxy settings apply, so build it once to learn it.
        url = self._make(kind, name, {}).url
        return self._make(kind, name, {"transport": _transport(url, kind, name)})

    def _make(self, kind: str, name: str, extra: dict[str, Any]) -> Any:
        if kind == "table":
            from azure.data.tables import TableClient

            opts = {"retry_total": 2, "retry_backoff_factor": 0.2, **extra}
            if self._conn:
                return TableClient.from_connection_string(self._conn, name, **opts)
            return TableClient(self._endpoint("table"), name, credential=self._identity(), **opts)
        from azure.storage.blob import LinearRetry

        # Two immediate retries: a blip is absorbed, an outage answers 503 at once.
        retry = LinearRetry(backoff=0, random_jitter_range=0, retry_total=2)
        if kind == "queue":
            from azure.storage.queue import (
                QueueClient,
                TextBase64DecodePolicy,
                TextBase64EncodePolicy,
            )

            qopts: dict[str, Any] = {
                "message_encode_policy": TextBase64EncodePolicy(),
                "message_decode_policy": TextBase64DecodePolicy(),
                "retry_policy": retry,
                **extra,
            }
            if self._conn:
                return QueueClient.from_connection_string(self._conn, name, **qopts)
            return QueueClient(self._endpoint("queue"), name, credential=self._identity(), **qopts)
        from azure.storage.blob import ContainerClient

        bopts: dict[str, Any] = {"retry_policy": retry, **extra}
        if self._conn:
            return ContainerClient.from_connection_string(self._conn, name, **bopts)
        return ContainerClient(self._endpoint("blob"), name, credential=self._identity(), **bopts)

    def _endpoint(self, service: str) -> str:
        return f"https://{self._settings.account_name}.{service}.core.windows.net"

    def _identity(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

            if self._settings.credential == "managedidentity":
                self._credential = ManagedIdentityCredential(client_id=self._settings.client_id)
            else:
                self._credential = DefaultAzureCredential(
                    managed_identity_client_id=self._settings.client_id
                )
        return self._credential


def _transport(url: str, kind: str, name: str) -> Any:
    """An HTTP transport that reads the environment's proxy and CA settings once, and counts
    each request it sends (`shared.storage.calls`) under the client's `kind` and `name`.

    `requests` otherwise looks for a netrc file and the CA bundle's path on every request
    (`trust_env`): about 15% of the host's CPU when it is busy with jobs. The transport sends
    through urllib3 itself rather than a `requests.Session`, whose own bookkeeping cost about a
    fifth of each call's CPU (`shared.storage.transport`).
    """
    from shared.storage.transport import StorageTransport

    return StorageTransport(
        url,
        kind,
        name,
        connection_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def _ensure(kind: str, client: Any) -> None:
    try:
        if kind == "table":
            client.create_table()
        elif kind == "queue":
            client.create_queue()
        else:
            client.create_container()
    except ResourceExistsError:
        pass
