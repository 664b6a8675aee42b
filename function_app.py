"""Azure Functions entry point: composition only."""

import azure.functions as func

from shared.api import accounts, health, jobs, openapi, suppliers, worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)  # API keys: shared.http

for blueprint in (health.bp, jobs.bp, suppliers.bp, accounts.bp, openapi.bp, worker.bp):
    app.register_functions(blueprint)
