"""Composition only: build the FunctionApp and register the blueprints of shared/api/."""

import azure.functions as func

from shared.api import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

app.register_functions(health.bp)
