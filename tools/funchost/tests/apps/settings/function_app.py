"""Settings sample app for funchost's tests: the route comes from a setting
(`%SettingsRoute%`), the function returns the settings it can see."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="%SettingsRoute%/settings", methods=["GET"])
def show_settings(req: func.HttpRequest) -> func.HttpResponse:
    names = ["FromFileOnly", "SetInBoth"]
    return func.HttpResponse(
        json.dumps({n: os.environ.get(n) for n in names}), mimetype="application/json"
    )
