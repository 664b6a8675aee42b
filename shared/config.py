"""Typed settings, read once from the environment (app settings in Azure, `local.settings.json`
`Values` locally). Nothing else in the app reads `os.environ`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from shared import __version__


class SettingsError(ValueError):
    """A setting has a value the app cannot use; the message names the setting."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class StorageSettings:
    """How to reach the storage account: a connection string, or an account name and an identity."""

    connection_string: str | None = None
    account_name: str | None = None
    credential: str | None = None  # "managedidentity" (the default in Azure) or unset
    client_id: str | None = None  # a user-assigned identity's client id

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        conn = env.get("AzureWebJobsStorage", "").strip()
        if conn:
            return cls(connection_string=conn)
        account = env.get("AzureWebJobsStorage__accountName", "").strip()
        if account:
            return cls(
                account_name=account,
                credential=env.get("AzureWebJobsStorage__credential") or None,
                client_id=env.get("AzureWebJobsStorage__clientId") or None,
            )
        return cls()

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.account_name)


@dataclass(frozen=True)
class Limits:
    """Bounds on every input, checked before the work they would cost."""

    max_body_bytes: int = 1_048_576
    max_qasm_bytes: int = 262_144
    max_clbits: int = 1024
    max_operations: int = 1_000_000
    max_depth: int = 100_000
    statevector_max_qubits: int = 24
    max_run_seconds: int = 300  # estimated simulation time; functionTimeout is 10 minutes


# What App Service leaves in a setting whose Key Vault reference it could not resolve.
_UNRESOLVED_REFERENCE = "@Microsoft.KeyVault("


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """The setting, stripped; `default` when unset or empty. A Key Vault reference that Azure
    could not resolve (the vault unreachable, the identity not allowed) arrives as its own text;
    it is read as unset, never as a credential (an admin key anyone could guess)."""
    value = env.get(name, "").strip()
    if value.startswith(_UNRESOLVED_REFERENCE):
        logging.getLogger(__name__).error(
            "%s is a Key Vault reference Azure could not resolve; it is treated as unset", name
        )
        return default
    return value or default


@dataclass(frozen=True)
class IBMSettings:
    """IBM Quantum (qiskit-ibm-runtime): an API key and the instance's CRN."""

    token: str | None = None
    instance: str | None = None
    channel: str = "ibm_quantum_platform"
    url: str | None = None  # the API's base URL, when not the channel's default

    @property
    def configured(self) -> bool:
        return bool(self.token)


@dataclass(frozen=True)
class AzureQuantumSettings:
    """An Azure Quantum workspace: resource id + location (managed identity), or a
    connection string."""

    resource_id: str | None = None
    location: str | None = None
    connection_string: str | None = None
    client_id: str | None = None  # a user-assigned managed identity's client id

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or (self.resource_id and self.location))


@dataclass(frozen=True)
class BraketSettings:
    """AWS Braket: an access key pair and the S3 bucket that receives the results."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    s3_bucket: str | None = None
    s3_prefix: str = "qcos"

    @property
    def configured(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key and self.s3_bucket)

    def bucket_for(self, region: str) -> str:
        """The results bucket for a device in `region`: Braket writes results to a bucket in
        the device's region, so `{region}` in the setting is replaced with it."""
        return (self.s3_bucket or "").replace("{region}", region or self.region)


@dataclass(frozen=True)
class SupplierSettings:
    ibm: IBMSettings = field(default_factory=IBMSettings)
    azure_quantum: AzureQuantumSettings = field(default_factory=AzureQuantumSettings)
    braket: BraketSettings = field(default_factory=BraketSettings)
    # Cloud tasks are polled after poll_initial_seconds, doubling up to poll_max_seconds
    # (kept below stale_claim_seconds, so a polled job never looks abandoned).
    poll_initial_seconds: int = 5
    poll_max_seconds: int = 300
    # A cloud task still not finished after this long fails the job (and is cancelled).
    task_deadline_hours: int = 72

    def configured(self, supplier_id: str) -> bool:
        """True when `supplier_id`'s credentials are set: it runs in the cloud, not emulated."""
        configured = {
            "ibm_quantum": self.ibm.configured,
            "azure_quantum": self.azure_quantum.configured,
            "braket": self.braket.configured,
        }
        return configured[supplier_id]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SupplierSettings:
        return cls(
            ibm=IBMSettings(
                token=_text(env, "QCOS_IBM_TOKEN"),
                instance=_text(env, "QCOS_IBM_INSTANCE"),
                channel=_text(env, "QCOS_IBM_CHANNEL") or IBMSettings.channel,
                url=_text(env, "QCOS_IBM_URL"),
            ),
            azure_quantum=AzureQuantumSettings(
                resource_id=_text(env, "QCOS_AZURE_QUANTUM_RESOURCE_ID"),
                location=_text(env, "QCOS_AZURE_QUANTUM_LOCATION"),
                connection_string=_text(env, "QCOS_AZURE_QUANTUM_CONNECTION_STRING"),
                client_id=_text(env, "QCOS_AZURE_QUANTUM_CLIENT_ID"),
            ),
            braket=BraketSettings(
                access_key_id=_text(env, "QCOS_BRAKET_ACCESS_KEY_ID"),
                secret_access_key=_text(env, "QCOS_BRAKET_SECRET_ACCESS_KEY"),
                session_token=_text(env, "QCOS_BRAKET_SESSION_TOKEN"),
                region=_text(env, "QCOS_BRAKET_REGION") or BraketSettings.region,
                s3_bucket=_text(env, "QCOS_BRAKET_S3_BUCKET"),
                s3_prefix=_text(env, "QCOS_BRAKET_S3_PREFIX") or BraketSettings.s3_prefix,
            ),
            poll_initial_seconds=_int(env, "QCOS_POLL_INITIAL_SECONDS", 5, minimum=1),
            poll_max_seconds=_int(env, "QCOS_POLL_MAX_SECONDS", 300, minimum=1),
            task_deadline_hours=_int(env, "QCOS_TASK_DEADLINE_HOURS", 72, minimum=1),
        )


@dataclass(frozen=True)
class LegalSettings:
    """The operator's company details and documents (GET /legal). A document is the path of a
    text, Markdown or HTML file, absolute or relative to the app's directory; unset: the
    gateway's default text. `documents_url`: where the documents are published (`<url>/<name>`);
    unset: this deployment's own `/legal/<name>`."""

    company_name: str | None = None
    registry_code: str | None = None  # the company's number in its country's register
    address: str | None = None
    country: str | None = None  # the country's English name or ISO 3166 alpha-2 code
    email: str | None = None
    vat_id: str | None = None
    website: str | None = None
    documents_url: str | None = None
    eula_file: str | None = None
    terms_file: str | None = None
    privacy_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LegalSettings:
        documents_url = _text(env, "QCOS_LEGAL_DOCUMENTS_URL")
        if documents_url and not documents_url.startswith(("https://", "http://")):
            raise SettingsError("QCOS_LEGAL_DOCUMENTS_URL must be an http(s) URL")
        return cls(
            company_name=_text(env, "QCOS_LEGAL_COMPANY_NAME"),
            registry_code=_text(env, "QCOS_LEGAL_REGISTRY_CODE"),
            address=_text(env, "QCOS_LEGAL_ADDRESS"),
            country=_text(env, "QCOS_LEGAL_COUNTRY"),
            email=_text(env, "QCOS_LEGAL_EMAIL"),
            vat_id=_text(env, "QCOS_LEGAL_VAT_ID"),
            website=_text(env, "QCOS_LEGAL_WEBSITE"),
            documents_url=documents_url.rstrip("/") if documents_url else None,
            eula_file=_text(env, "QCOS_LEGAL_EULA_FILE"),
            terms_file=_text(env, "QCOS_LEGAL_TERMS_FILE"),
            privacy_file=_text(env, "QCOS_LEGAL_PRIVACY_FILE"),
        )


@dataclass(frozen=True)
class RerankSettings:
    """`POST /rerank`: the text scorer and the quantum tiers' QAOA.

    The scorer is `lexical` (BM25 and character n-grams, no model to download) or `embeddings`:
    an OpenAI-compatible `/embeddings` endpoint (Azure OpenAI included) at `embeddings_url`.
    """

    scorer: str = "lexical"  # "lexical" | "embeddings"
    embeddings_url: str | None = None
    embeddings_key: str | None = None  # sent as `api-key` and as a Bearer token
    embeddings_model: str | None = None
    embeddings_timeout_seconds: int = 20
    # The QAOA: qubits (candidates on the shortlist), layers, and shots of the final sampling.
    qubits: int = 16
    layers: int = 1  # 2 layers double the time per evaluation and gained nothing at 50
    shots: int = 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RerankSettings:
        scorer = _text(env, "QCOS_RERANK_SCORER", cls.scorer) or cls.scorer
        if scorer not in ("lexical", "embeddings"):
            raise SettingsError(f"QCOS_RERANK_SCORER must be lexical or embeddings, not {scorer!r}")
        url = _text(env, "QCOS_RERANK_EMBEDDINGS_URL")
        if scorer == "embeddings" and not url:
            raise SettingsError("QCOS_RERANK_SCORER=embeddings needs QCOS_RERANK_EMBEDDINGS_URL")
        qubits = _int(env, "QCOS_RERANK_QUBITS", cls.qubits, minimum=2)
        if qubits > 24:
            raise SettingsError("QCOS_RERANK_QUBITS must be at most 24")
        return cls(
            scorer=scorer,
            embeddings_url=url,
            embeddings_key=_text(env, "QCOS_RERANK_EMBEDDINGS_KEY"),
            embeddings_model=_text(env, "QCOS_RERANK_EMBEDDINGS_MODEL"),
            embeddings_timeout_seconds=_int(
                env, "QCOS_RERANK_EMBEDDINGS_TIMEOUT_SECONDS", 20, minimum=1
            ),
            qubits=qubits,
            layers=_int(env, "QCOS_RERANK_LAYERS", cls.layers, minimum=1),
            shots=_int(env, "QCOS_RERANK_SHOTS", cls.shots, minimum=1),
        )


@dataclass(frozen=True)
class StreamSettings:
    """The live stream (`/api/v2/network/stream`) through Azure Web PubSub: the service's
    connection string (`Endpoint=...;AccessKey=...;Version=1.0;`) and the hub. Unset: nothing
    is published and the stream's functions answer 503."""

    connection_string: str | None = None
    hub: str = "qcos"

    @property
    def configured(self) -> bool:
        return bool(self.connection_string)

    @property
    def access_key(self) -> str:
        """The connection string's `AccessKey` ("" when not configured)."""
        return _connection_fields(self.connection_string or "").get("accesskey", "")

    @property
    def client_origin(self) -> str | None:
        """The WebSocket origin of the client URLs the service negotiates
        (`Endpoint=https://x.webpubsub.azure.com;...` -> `wss://x.webpubsub.azure.com`,
        `Endpoint=http://127.0.0.1;Port=7080;...` -> `ws://127.0.0.1:7080`); None when not
        configured."""
        fields = _connection_fields(self.connection_string or "")
        endpoint = urlsplit(fields.get("endpoint", ""))
        scheme = {"http": "ws", "https": "wss"}.get(endpoint.scheme.lower())
        if scheme is None or not endpoint.hostname:
            return None
        port = fields.get("port") or (str(endpoint.port) if endpoint.port else "")
        return f"{scheme}://{endpoint.hostname}" + (f":{port}" if port.isdigit() else "")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StreamSettings:
        connection_string = _text(env, "QCOS_WEBPUBSUB_CONNECTION_STRING")
        if connection_string and not _connection_fields(connection_string).get("accesskey"):
            # Entra ID sign-in to Web PubSub is not wired yet: the event handler checks
            # `ce-signature` with the access key.
            raise SettingsError("QCOS_WEBPUBSUB_CONNECTION_STRING must carry an AccessKey")
        hub = _text(env, "QCOS_WEBPUBSUB_HUB", cls.hub) or cls.hub
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,127}", hub):
            raise SettingsError(f"QCOS_WEBPUBSUB_HUB is not a Web PubSub hub name: {hub!r}")
        return cls(connection_string=connection_string, hub=hub)


def _connection_fields(connection_string: str) -> dict[str, str]:
    """`Name=value;...` of an Azure connection string, names lower-cased."""
    fields = {}
    for part in connection_string.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _retry_delays(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        delays = tuple(int(part) for part in raw.split(","))
    except ValueError as exc:
        raise SettingsError(f"{name} must be comma-separated seconds, not {raw!r}") from exc
    if any(d < 0 or d > 604_800 for d in delays):  # a queue message waits 7 days at most
        raise SettingsError(f"{name}: each delay must be 0 to 604800 seconds")
    return delays


@dataclass(frozen=True)
class WebhookSettings:
    """Signed webhooks (`shared.webhooks`).

    `allow_loopback` (local runs only): receivers on loopback addresses are accepted, over plain
    http too; every other receiver must be https and resolve to public addresses only.
    A failed delivery is tried again after each of `retry_seconds` in turn, then marked failed.
    """

    allow_loopback: bool = False
    retry_seconds: tuple[int, ...] = (5, 30, 120, 600, 1800)
    timeout_seconds: int = 10
    max_per_user: int = 20

    @property
    def max_attempts(self) -> int:
        return len(self.retry_seconds) + 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        loopback = (_text(env, "QCOS_WEBHOOKS_ALLOW_LOOPBACK") or "false").lower()
        if loopback not in ("true", "false"):
            raise SettingsError("QCOS_WEBHOOKS_ALLOW_LOOPBACK must be true or false")
        return cls(
            allow_loopback=loopback == "true",
            retry_seconds=_retry_delays(env, "QCOS_WEBHOOKS_RETRY_SECONDS", cls.retry_seconds),
            timeout_seconds=_int(env, "QCOS_WEBHOOKS_TIMEOUT_SECONDS", 10, minimum=1),
            max_per_user=_int(env, "QCOS_WEBHOOKS_MAX_PER_USER", 20, minimum=1),
        )


@dataclass(frozen=True)
class TelemetrySettings:
    """Where traces, metrics and logs go: the Application Insights resource's connection string
    (`APPLICATIONINSIGHTS_CONNECTION_STRING`, the name App Service sets). Unset: nothing is
    configured and nothing is sent.

    Where the resource refuses local authentication, the exporter signs in with Entra ID from
    `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` (`ClientId=<identity's client id>;
    Authorization=AAD`), which the Azure Monitor exporter reads itself.
    """

    connection_string: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.connection_string)


def library_log_level(env: Mapping[str, str] | None = None) -> int:
    """The level third-party libraries' loggers are held at (`shared.telemetry`):
    `QCOS_LIBRARY_LOG_LEVEL`, a level name (DEBUG, INFO, WARNING, ERROR) or number; WARNING
    when unset. Read on its own when the app is imported, before any function runs, not with
    the other settings (a bad value elsewhere must not stop the app from loading). Raises
    `SettingsError` for a value that names no level."""
    if env is None:
        env = os.environ
    raw = _text(env, "QCOS_LIBRARY_LOG_LEVEL")
    if raw is None:
        return logging.WARNING
    if raw.isdigit():
        return int(raw)
    level = logging.getLevelName(raw.upper())
    if not isinstance(level, int):
        raise SettingsError(
            f"QCOS_LIBRARY_LOG_LEVEL must be a log level (DEBUG, INFO, WARNING, ERROR), not {raw!r}"
        )
    return level


@dataclass(frozen=True)
class Settings:
    version: str = __version__
    storage: StorageSettings = field(default_factory=StorageSettings)
    admin_api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    # The queue trigger's maxDequeueCount in host.json: the delivery that is the last one.
    max_dequeue_count: int = 5
    # POST /execute-sync answers 202 with the job id after this long (Azure cuts HTTP at 230 s).
    sync_timeout_seconds: int = 60
    # A job accepted but not enqueued for this long is enqueued by the recovery timer.
    recover_after_seconds: int = 60
    # A `processing` claim older than this is taken over (the functionTimeout plus a margin).
    stale_claim_seconds: int = 900
    # How many jobs one instance runs at once (host.json queues.batchSize), for estimates.
    worker_parallelism: int = 16
    # Processes that run heavy simulations (None: one per CPU).
    aer_processes: int | None = None
    suppliers: SupplierSettings = field(default_factory=SupplierSettings)
    # The network API: backends one `strategy: all` job may fan out to, runs in one batch.
    network_max_fanout: int = 10
    network_max_runs: int = 100
    # The deployment's license: a signed document (JSON) and its issuer's Ed25519 public key
    # (base64 of the 32 raw bytes). Unset: the license is reported invalid; nothing is gated.
    license_document: str | None = None
    license_public_key: str | None = None
    # Signs ledger evidence bundles: base64 of a 32-byte Ed25519 seed. Unset: a key made at
    # start (bundles say the key is ephemeral).
    ledger_signing_key: str | None = None
    legal: LegalSettings = field(default_factory=LegalSettings)
    rerank: RerankSettings = field(default_factory=RerankSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        limits = Limits(
            max_body_bytes=_int(env, "QCOS_MAX_BODY_BYTES", Limits.max_body_bytes, minimum=1024),
            max_qasm_bytes=_int(env, "QCOS_MAX_QASM_BYTES", Limits.max_qasm_bytes, minimum=64),
            max_clbits=_int(env, "QCOS_MAX_CLBITS", Limits.max_clbits, minimum=1),
            max_operations=_int(env, "QCOS_MAX_OPERATIONS", Limits.max_operations, minimum=1),
            max_depth=_int(env, "QCOS_MAX_DEPTH", Limits.max_depth, minimum=1),
            statevector_max_qubits=_int(
                env, "QCOS_STATEVECTOR_MAX_QUBITS", Limits.statevector_max_qubits, minimum=1
            ),
            max_run_seconds=_int(env, "QCOS_MAX_RUN_SECONDS", Limits.max_run_seconds, minimum=1),
        )
        stale_claim_seconds = _int(env, "QCOS_STALE_CLAIM_SECONDS", 900, minimum=1)
        suppliers = SupplierSettings.from_env(env)
        if suppliers.poll_max_seconds >= stale_claim_seconds:
            # A polled job would look abandoned between two polls, and recovery would keep
            # replacing its poll chain before any poll ran.
            raise SettingsError(
                "QCOS_POLL_MAX_SECONDS must be below QCOS_STALE_CLAIM_SECONDS "
                f"({suppliers.poll_max_seconds} >= {stale_claim_seconds})"
            )
        return cls(
            storage=StorageSettings.from_env(env),
            admin_api_key=_text(env, "QCOS_ADMIN_API_KEY"),
            limits=limits,
            max_dequeue_count=_int(env, "QCOS_MAX_DEQUEUE_COUNT", 5, minimum=1),
            sync_timeout_seconds=_int(env, "QCOS_SYNC_TIMEOUT_SECONDS", 60, minimum=1),
            recover_after_seconds=_int(env, "QCOS_RECOVER_AFTER_SECONDS", 60, minimum=1),
            stale_claim_seconds=stale_claim_seconds,
            worker_parallelism=_int(env, "QCOS_WORKER_PARALLELISM", 16, minimum=1),
            aer_processes=_int(env, "QCOS_AER_PROCESSES", 0, minimum=0) or None,
            suppliers=suppliers,
            network_max_fanout=_int(env, "QCOS_NETWORK_MAX_FANOUT", 10, minimum=1),
            network_max_runs=_int(env, "QCOS_NETWORK_MAX_RUNS", 100, minimum=1),
            license_document=_text(env, "QCOS_LICENSE"),
            license_public_key=_text(env, "QCOS_LICENSE_PUBLIC_KEY"),
            ledger_signing_key=_text(env, "QCOS_LEDGER_SIGNING_KEY"),
            legal=LegalSettings.from_env(env),
            rerank=RerankSettings.from_env(env),
            telemetry=TelemetrySettings(_text(env, "APPLICATIONINSIGHTS_CONNECTION_STRING")),
            webhooks=WebhookSettings.from_env(env),
            stream=StreamSettings.from_env(env),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return Settings.from_env(os.environ)
