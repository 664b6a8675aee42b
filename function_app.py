"""Azure Functions entry point: composition only."""

import azure.functions as func

from shared.api import BLUEPRINTS

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)  # API keys: shared.http

for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
