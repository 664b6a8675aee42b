"""Refused at start: `forgets_output` declares a queue binding `outbox` it has no parameter for."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="broken")
@app.queue_output(arg_name="outbox", queue_name="outbox", connection="AzureWebJobsStorage")
def forgets_output(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
