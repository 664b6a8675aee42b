"""What the ledger's reads cost at 10,000 entries, on Azurite (no host: the services in-process).

The app's `Services` are built from settings pointed at an Azurite this script starts (as the
tests' `services_env` does). ENTRIES ledger entries are written first through
`LedgerRepository.insert` (one conditional insert each) and each user's chain then sealed in
batches (`.seal`: entity-group transactions of 99 entries and the head): USERS users in
TENANTS tenants, PROJECTS projects, a mix of local, emulated and cloud backends (USD and
Quantinuum's HQC), times spread over the last DAYS days. WRITERS threads write, one user's chain
at a time each (a chain is serial by design: its head is ETag-guarded), and the write time and
rate are printed.

Then, each timed RUNS times and the median printed, in ms and rows per second:
- `repo.entries(...)` over the last RANGE_DAYS days, for one tenant and for every tenant;
- a JSON page of PAGE entries as `GET /api/v1/ledger/usage` answers it (`repo.page`, then the
  `UsagePage` model dumped to JSON): the first page, and a later one from its cursor;
- the FOCUS CSV export of every entry as `_usage` makes it (read, sort by time, user and seq,
  `focus.to_csv`), with the read + sort and the CSV step also shown apart, and its size;
- `Ledger.chargeback` over everything, as the admin;
- `Ledger.create_evidence` of one tenant over everything, as the admin (reads the tenant's
  entries, then each of its users' whole chain and head, verifies and signs, uploads the blob);
  the bundle's size and the chain breaks it records (0 expected) are printed.
Every query but a user's chain filters on non-key columns, so each one scans the whole table
(as Table Storage does too); rows per second counts the rows returned. Nothing is asserted.
Run: `make bench` or `PYTHONPATH=. .venv/bin/python bench/ledger_query.py`.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from funchost.testing import Azurite
from shared import clock, signing
from shared.accounts.service import ADMIN
from shared.config import get_settings
from shared.ledger import focus
from shared.ledger.models import LedgerEntry
from shared.ledger.schemas import EntryView, UsagePage
from shared.ledger.service import amount
from shared.services import Services

ENTRIES = 10_000
USERS = 20
TENANTS = 4
PROJECTS = 5
DAYS = 30
RANGE_DAYS = 7
PAGE = 1000
LATER_PAGE = 6  # the page fetched from a cursor (its cursor is found before timing)
RUNS = 3
WRITERS = 8  # below the SDK's HTTP pool of 10 connections per client
SEED = 20_261_121


@dataclass(frozen=True)
class Backend:
    supplier: str
    backend: str
    mode: str
    currency: str
    per_job: Decimal  # list price per job
    per_shot: Decimal  # list price per shot
    source: str


BACKENDS = (
    Backend("local", "qiskit_aer", "local", "USD", Decimal(0), Decimal(0), "local simulator"),
    Backend(
        "ionq",
        "ionq_simulator",
        "emulated",
        "USD",
        Decimal("0.30"),
        Decimal("0.00003"),
        "pricebook 2026-11-21",
    ),
    Backend(
        "braket",
        "braket_sv1",
        "cloud",
        "USD",
        Decimal("0.30"),
        Decimal("0.00035"),
        "pricebook 2026-11-21",
    ),
    Backend(
        "ibm",
        "ibm_brisbane",
        "cloud",
        "USD",
        Decimal(0),
        Decimal("0.0016"),
        "pricebook 2026-11-21",
    ),
    Backend(
        "quantinuum",
        "H1-1",
        "cloud",
        "HQC",
        Decimal(5),
        Decimal("0.005"),
        "pricebook 2026-11-21",
    ),
)
WEIGHTS = (40, 25, 20, 10, 5)


def tenant_of(user: int) -> str:
    return f"tenant-{user % TENANTS}"


def user_id(user: int) -> str:
    return f"u_{user:016x}"


def chain_of(user: int, start: datetime) -> list[LedgerEntry]:
    """`user`'s entries in chain order (times ascending from `start` over DAYS), unsealed."""
    rng = random.Random(SEED * 100 + user)
    count = ENTRIES // USERS + (1 if user < ENTRIES % USERS else 0)
    offsets = sorted(rng.uniform(0, DAYS * 86_400) for _ in range(count))
    entries = []
    for offset in offsets:
        backend = rng.choices(BACKENDS, weights=WEIGHTS)[0]
        shots = rng.choice((10, 100, 1000, 1024, 4000))
        list_cost = backend.per_job + backend.per_shot * shots
        cost = list_cost if backend.mode == "cloud" else Decimal(0)
        entries.append(
            LedgerEntry(
                user_id=user_id(user),
                job_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                seq=0,
                time=clock.iso(start + timedelta(seconds=offset)),
                tenant=tenant_of(user),
                project=f"project-{rng.randrange(PROJECTS)}",
                supplier=backend.supplier,
                backend=backend.backend,
                mode=backend.mode,
                shots=shots,
                cost=amount(cost),
                currency=backend.currency,
                list_cost=amount(list_cost),
                price_source=backend.source,
            )
        )
    return entries


def write(services: Services) -> None:
    start = clock.utcnow() - timedelta(days=DAYS)
    chains = [chain_of(user, start) for user in range(USERS)]
    repo = services.ledger.repo

    def append_all(chain: list[LedgerEntry]) -> int:
        written = sum(repo.insert(entry) is not None for entry in chain)
        repo.seal(chain[0].user_id)
        return written

    repo.head(user_id(0))  # creates the table before the clock starts
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(WRITERS) as pool:
        written = sum(pool.map(append_all, chains))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"write: {written} entries (of {ENTRIES}) through LedgerRepository.insert then .seal, "
        f"{USERS} users / {TENANTS} tenants / {PROJECTS} projects, {WRITERS} threads: "
        f"{elapsed:.1f} s, "
        f"{written / elapsed:.0f} entries/s ({elapsed / written * 1000 * WRITERS:.1f} ms per "
        "entry per thread: an insert, then sealed in batches of 99)\n"
        f"  this process's CPU meanwhile {cpu:.1f} s ({cpu / written * 1000:.1f} ms per append, "
        "all threads: the storage SDK's requests and batch encoding, under one GIL)"
    )


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    """The median seconds of RUNS calls of `fn`, and the rows the last call reported."""
    seconds = []
    rows = 0
    for _ in range(RUNS):
        started = time.perf_counter()
        rows = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), rows


def line(label: str, seconds: float, rows: int) -> None:
    print(f"  {label:<52} {seconds * 1000:9.1f} {rows:7d} {rows / seconds:9.0f}")


def page_json(entries: list[LedgerEntry], cursor: str | None) -> str:
    """The body `GET /api/v1/ledger/usage` answers for a page."""
    views = [EntryView(**entry.__dict__) for entry in entries]
    return UsagePage(entries=views, next_cursor=cursor, order="user, job id").model_dump_json()


def query(services: Services) -> None:
    ledger = services.ledger
    repo = ledger.repo
    now = clock.utcnow()
    since_all = clock.iso(now - timedelta(days=DAYS + 1))
    until = clock.iso(now + timedelta(minutes=1))
    since_range = clock.iso(now - timedelta(days=RANGE_DAYS))
    tenant = tenant_of(0)
    everything = {"since": since_all, "until": until}

    cursor: str | None = None
    for _ in range(LATER_PAGE - 1):
        _, cursor = repo.page(PAGE, cursor, **everything)
    later_cursor = cursor

    sizes: dict[str, int] = {}

    def tenant_range() -> int:
        return len(list(repo.entries(tenant=tenant, since=since_range, until=until)))

    def all_range() -> int:
        return len(list(repo.entries(since=since_range, until=until)))

    def first_page() -> int:
        entries, following = repo.page(PAGE, None, **everything)
        sizes["page"] = len(page_json(entries, following).encode())
        return len(entries)

    def later_page() -> int:
        entries, following = repo.page(PAGE, later_cursor, **everything)
        page_json(entries, following)
        return len(entries)

    def read_sorted() -> list[LedgerEntry]:
        return sorted(repo.entries(**everything), key=lambda e: (e.time, e.user_id, e.seq))

    def read_sort() -> int:
        return len(read_sorted())

    ordered = read_sorted()

    def csv_only() -> int:
        sizes["csv"] = len(focus.to_csv(ordered).encode())
        return len(ordered)

    def csv_export() -> int:
        entries = read_sorted()
        focus.to_csv(entries)
        return len(entries)

    def chargeback() -> int:
        groups = ledger.chargeback(ADMIN, since_all, until)
        sizes["groups"] = len(groups)
        sizes["jobs"] = sum(int(g["jobs"]) for g in groups)
        return sizes["jobs"]

    bundles: list[str] = []

    def evidence() -> int:
        made = ledger.create_evidence(ADMIN, since_all, until, tenant)
        bundles.append(made.bundle_id)
        return made.entries

    print(
        f"\nqueries: median of {RUNS} runs each; rows = rows returned (every query scans the table)"
    )
    print(f"  {'':<52} {'ms':>9} {'rows':>7} {'rows/s':>9}")
    results = [
        (f"entries: {tenant}, last {RANGE_DAYS} days", tenant_range),
        (f"entries: all tenants, last {RANGE_DAYS} days", all_range),
        (f"JSON page of {PAGE}: first (repo.page + UsagePage)", first_page),
        (f"JSON page of {PAGE}: page {LATER_PAGE}, from its cursor", later_page),
        ("FOCUS CSV: read + sort every entry", read_sort),
        ("FOCUS CSV: focus.to_csv of the sorted entries", csv_only),
        ("FOCUS CSV export: read + sort + to_csv (as _usage)", csv_export),
        ("chargeback: everything, admin", chargeback),
        (f"evidence bundle: {tenant}, everything, admin", evidence),
    ]
    for label, fn in results:
        seconds, rows = timed(fn)
        line(label, seconds, rows)

    bundle = ledger.evidence(ADMIN, bundles[-1])
    document = json.loads(bundle)
    breaks = sum(len(chain["breaks"]) for chain in document["chains"])
    print(
        f"\nsizes: JSON page of {PAGE} {sizes['page'] / 1024:.0f} KiB; FOCUS CSV of "
        f"{len(ordered)} entries {sizes['csv']:,} bytes ({sizes['csv'] / len(ordered):.0f} "
        f"bytes per row, {len(focus.COLUMNS)} columns); evidence bundle of {tenant} "
        f"{len(bundle):,} bytes, {len(document['chains'])} chains, {breaks} chain breaks"
    )
    print(
        f"check: chargeback {sizes['groups']} groups (tenant, project, currency) adding up to "
        f"{sizes['jobs']} jobs"
    )


def main() -> None:
    with Azurite() as azurite:
        os.environ["AzureWebJobsStorage"] = azurite.connection_string
        os.environ["QCOS_ADMIN_API_KEY"] = "qcos_admin_" + "l" * 40
        os.environ["QCOS_LEDGER_SIGNING_KEY"] = signing.seed_b64(signing.new_private_key())
        get_settings.cache_clear()
        services = Services.build(get_settings())
        print(f"ledger_query: Azurite (in memory) and this process on {os.cpu_count()} CPUs")
        write(services)
        query(services)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
