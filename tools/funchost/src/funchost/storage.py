"""Storage accounts named by binding `connection` settings.

A connection names a setting: a connection string (`UseDevelopmentStorage=true` means
Azurite on its default ports), or, as in Azure, identity-based settings
`<name>__accountName` / `<name>__queueServiceUri` / `<name>__tableServiceUri`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .settings import ConfigError

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{DEV_ACCOUNT};"
)


@dataclass(frozen=True)
class StorageAccount:
    """One storage account: a connection string, or service URIs used with an identity."""

    setting: str
    connection_string: str | None = None
    queue_uri: str | None = None
    table_uri: str | None = None

    def queue_client(self, queue_name: str) -> Any:
        from azure.storage.queue.aio import QueueClient

        if self.connection_string:
            return QueueClient.from_connection_string(self.connection_string, queue_name)
        if not self.queue_uri:
            raise ConfigError(f"connection {self.setting!r} has no queue endpoint")
        return QueueClient(self.queue_uri, queue_name, credential=_identity())

    def table_service(self) -> Any:
        from azure.data.tables.aio import TableServiceClient

        if self.connection_string:
            return TableServiceClient.from_connection_string(self.connection_string)
        if not self.table_uri:
            raise ConfigError(f"connection {self.setting!r} has no table endpoint")
        return TableServiceClient(self.table_uri, credential=_identity())


def _identity() -> Any:
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError("identity-based connections need the azure-identity package") from exc
    return DefaultAzureCredential()


def resolve_account(
    connection: str | None, environ: dict[str, str] | None = None
) -> StorageAccount:
    """Find the account a binding's `connection` names (empty: AzureWebJobsStorage)."""
    env = os.environ if environ is None else environ
    name = connection or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        value = env.get(candidate)
        if value:
            if value.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
                value = DEV_CONNECTION
            return StorageAccount(setting=candidate, connection_string=value)
        account = env.get(f"{candidate}__accountName")
        queue_uri = env.get(f"{candidate}__queueServiceUri")
        table_uri = env.get(f"{candidate}__tableServiceUri")
        if account or queue_uri or table_uri:
            return StorageAccount(
                setting=candidate,
                queue_uri=queue_uri
                or (f"https://{account}.queue.core.windows.net" if account else None),
                table_uri=table_uri
                or (f"https://{account}.table.core.windows.net" if account else None),
            )
    raise ConfigError(
        f"storage connection {name!r} is not configured: set {name} to a connection string "
        f"(UseDevelopmentStorage=true for Azurite) or {name}__accountName"
    )
