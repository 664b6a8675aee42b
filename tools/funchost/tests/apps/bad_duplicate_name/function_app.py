"""Refused at start: two functions are both named `twin`."""

import azure.functions as func

app = func.FunctionApp()


@app.function_name("twin")
@app.route(route="one")
def first(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("one")


@app.function_name("twin")
@app.route(route="two")
def second(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("two")
