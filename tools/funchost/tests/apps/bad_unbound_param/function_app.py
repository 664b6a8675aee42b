"""Refused at start: `ready` has a Python parameter (`extra`) with no binding."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="ready")
def ready(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="broken")
def needs_extra(req: func.HttpRequest, extra: str) -> func.HttpResponse:
    return func.HttpResponse(extra)
