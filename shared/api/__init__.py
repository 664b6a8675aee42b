"""The HTTP, queue, timer and durable functions, as blueprints; `function_app.py` registers
`BLUEPRINTS` in this order."""

from shared.api import (
    accounts,
    dashboard,
    docs,
    fallback,
    health,
    jobs,
    ledger,
    legal,
    network,
    openapi,
    orchestration,
    rerank,
    runtime,
    stream,
    suppliers,
    webhooks,
    worker,
)

BLUEPRINTS = (
    health.bp,
    jobs.bp,
    suppliers.bp,
    network.bp,
    rerank.bp,
    orchestration.bp,
    accounts.bp,
    legal.bp,
    ledger.bp,
    runtime.bp,
    openapi.bp,
    docs.bp,
    dashboard.bp,
    stream.bp,
    webhooks.bp,
    worker.bp,
    fallback.bp,  # last: it takes what no other function does
)
