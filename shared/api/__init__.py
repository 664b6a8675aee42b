"""The HTTP, queue, timer and durable functions, as blueprints; `function_app.py` registers
`BLUEPRINTS` in this order."""

from shared.api import (
    accounts,
    health,
    jobs,
    network,
    openapi,
    orchestration,
    suppliers,
    worker,
)

BLUEPRINTS = (
    health.bp,
    jobs.bp,
    suppliers.bp,
    network.bp,
    orchestration.bp,
    accounts.bp,
    openapi.bp,
    worker.bp,
)
