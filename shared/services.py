"""The process's services, built once from the settings (tests build their own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache, partial

from shared import idempotency
from shared.accounts.quota import Quotas
from shared.accounts.service import Accounts
from shared.config import Settings, get_settings
from shared.idempotency import Idempotency
from shared.jobs.estimates import Estimator
from shared.jobs.repository import JobRepository
from shared.jobs.service import JobService
from shared.ledger.repository import LedgerRepository
from shared.ledger.service import Ledger
from shared.legal import license
from shared.network.listing import JobListing
from shared.network.live import Live
from shared.network.repository import NetworkRepository
from shared.network.service import NetworkService
from shared.pricing.book import pricebook
from shared.rerank.service import KIND as RERANK
from shared.rerank.service import RerankService, run_task
from shared.storage import Storage
from shared.stream.service import Stream
from shared.suppliers import processes
from shared.suppliers.base import SupplierAdapter
from shared.suppliers.registry import SupplierRegistry
from shared.webhooks.repository import WebhookRepository
from shared.webhooks.service import Webhooks


@dataclass(frozen=True)
class Services:
    settings: Settings
    storage: Storage
    accounts: Accounts
    jobs: JobService
    suppliers: SupplierRegistry
    network: NetworkService
    listing: JobListing  # the caller's jobs, v1 and v2 together
    quotas: Quotas
    ledger: Ledger
    idempotency: Idempotency
    rerank: RerankService
    stream: Stream
    webhooks: Webhooks

    @classmethod
    def build(
        cls, settings: Settings, adapters: Mapping[str, SupplierAdapter] | None = None
    ) -> Services:
        """The services for `settings`; `adapters` replaces suppliers' adapters."""
        processes.configure(settings.aer_processes)  # read when the processes are first made
        license.current()  # verified at start (and logged), not at the first request
        pricebook()  # checked against the catalog at start: a broken book fails every start
        storage = Storage(settings.storage)
        repo = JobRepository(storage)
        estimator = Estimator(storage, repo, settings.worker_parallelism)
        suppliers = SupplierRegistry(settings, adapters)
        quotas = Quotas(storage, count_today=repo.count_today)
        ledger = Ledger(storage, LedgerRepository(storage), settings.ledger_signing_key)
        tasks = {RERANK: partial(run_task, settings.rerank)}
        jobs = JobService(settings, repo, estimator, suppliers, quotas, ledger, tasks)
        accounts = Accounts(storage, settings.admin_api_key)
        network_repo = NetworkRepository(storage)
        network = NetworkService(settings, network_repo, jobs, repo, suppliers, estimator, quotas)
        if settings.stream.configured:  # only the stream shows what it derives
            Live(network_repo, repo, network.state.queue_load, network.state.backend_status).start()
        return cls(
            settings=settings,
            storage=storage,
            accounts=accounts,
            jobs=jobs,
            suppliers=suppliers,
            network=network,
            listing=JobListing(repo, network_repo),
            quotas=quotas,
            ledger=ledger,
            idempotency=Idempotency(
                storage,
                lock_seconds=settings.sync_timeout_seconds + idempotency.LOCK_MARGIN_SECONDS,
            ),
            rerank=RerankService(settings.rerank, jobs),
            stream=Stream(settings.stream, accounts),
            webhooks=Webhooks(settings.webhooks, WebhookRepository(storage)).start(),
        )


@lru_cache(maxsize=1)
def services() -> Services:
    """The services of this process (settings read on first use)."""
    return Services.build(get_settings())
