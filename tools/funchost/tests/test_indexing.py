"""Indexing: funchost loads an app the way the Python worker does, and refuses
what the worker would refuse, naming the function."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func
import pytest

from funchost.indexing import FunctionLoadError, index_app
from funchost.settings import ConfigError
from funchost.testing import FuncHostError

if TYPE_CHECKING:
    from conftest import AppRunner


# --- unit level: index_app on FunctionApp objects built here ---------------------------


def test_a_parameter_without_a_binding_is_refused_naming_the_function() -> None:
    # given a function with a Python parameter no binding declares
    app = func.FunctionApp()

    @app.route(route="x")
    def needs_extra(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse(extra)

    # when the app is indexed
    with pytest.raises(FunctionLoadError) as refused:
        index_app(app)
    # then the refusal names the function and the parameter
    assert refused.value.function_name == "needs_extra"
    assert "declared in Python but not in the bindings: ['extra']" in str(refused.value)


def test_a_binding_without_a_parameter_is_refused_naming_the_function() -> None:
    # given a function declaring a queue output it takes no parameter for
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="outbox", queue_name="outbox", connection="AzureWebJobsStorage")
    def forgets_output(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    # when the app is indexed
    with pytest.raises(FunctionLoadError) as refused:
        index_app(app)
    # then the refusal names the function and the binding
    assert refused.value.function_name == "forgets_output"
    assert "declared in the bindings but not in Python: ['outbox']" in str(refused.value)


def test_two_functions_with_one_name_are_refused() -> None:
    # given two functions both named twin
    app = func.FunctionApp()

    @app.function_name("twin")
    @app.route(route="one")
    def first(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("one")

    @app.function_name("twin")
    @app.route(route="two")
    def second(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("two")

    # when the app is indexed
    with pytest.raises(ConfigError) as refused:
        index_app(app)
    # then the refusal names the duplicated name
    assert "twin" in str(refused.value)
    assert "unique" in str(refused.value)


def test_an_out_binding_whose_parameter_is_not_annotated_out_is_refused() -> None:
    # given a queue output whose parameter is a plain str
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def plain_out(req: func.HttpRequest, msg: str) -> func.HttpResponse:
        return func.HttpResponse("ok")

    # when the app is indexed
    with pytest.raises(FunctionLoadError) as refused:
        index_app(app)
    # then the refusal says the annotation must be func.Out
    assert refused.value.function_name == "plain_out"
    assert "azure.functions.Out" in str(refused.value)


def test_a_valid_app_is_indexed_with_its_triggers_outputs_and_resolved_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a queue name taken from a setting, a $return output and a context parameter
    monkeypatch.setenv("IncomingQueue", "incoming-7")
    app = func.FunctionApp()

    @app.queue_trigger(
        arg_name="msg", queue_name="%IncomingQueue%", connection="AzureWebJobsStorage"
    )
    @app.queue_output(arg_name="$return", queue_name="done", connection="AzureWebJobsStorage")
    async def relay(msg: func.QueueMessage, context: func.Context) -> str:
        return "x"

    @app.route(route="send", methods=["POST"])
    @app.queue_output(
        arg_name="out", queue_name="%IncomingQueue%", connection="AzureWebJobsStorage"
    )
    def send(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
        return func.HttpResponse("ok")

    # when the app is indexed
    specs = {spec.name: spec for spec in index_app(app)}
    # then each function has its trigger, outputs and settings resolved
    relay_spec, send_spec = specs["relay"], specs["send"]
    assert relay_spec.trigger_type == "queueTrigger"
    assert relay_spec.trigger.get("queueName") == "incoming-7"
    assert relay_spec.return_binding is not None
    assert relay_spec.return_binding.get("queueName") == "done"
    assert relay_spec.is_async and relay_spec.wants_context
    assert send_spec.trigger_type == "httpTrigger"
    assert [(b.name, b.get("queueName")) for b in send_spec.outputs] == [("out", "incoming-7")]
    assert not send_spec.is_async and not send_spec.wants_context


def test_a_setting_reference_that_is_not_defined_is_refused_naming_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a queue name referencing a setting that does not exist
    monkeypatch.delenv("NoSuchSetting", raising=False)
    app = func.FunctionApp()

    @app.queue_trigger(
        arg_name="msg", queue_name="%NoSuchSetting%", connection="AzureWebJobsStorage"
    )
    def listens(msg: func.QueueMessage) -> None:
        pass

    # when the app is indexed
    with pytest.raises(FunctionLoadError) as refused:
        index_app(app)
    # then the refusal names the function and the setting
    assert refused.value.function_name == "listens"
    assert "NoSuchSetting" in str(refused.value)


# --- process level: funchost refuses to start and says why -------------------------------


@pytest.mark.parametrize(
    ("app_name", "expected"),
    [
        (
            "bad_unbound_param",
            "cannot load the needs_extra function: the following parameters "
            "are declared in Python but not in the bindings: ['extra']",
        ),
        (
            "bad_unused_binding",
            "cannot load the forgets_output function: the following "
            "parameters are declared in the bindings but not in Python: "
            "['outbox']",
        ),
        ("bad_duplicate_name", "Function twin does not have a unique function name"),
        (
            "bad_missing_setting",
            "cannot load the listens function: setting "
            "'UndefinedQueueSetting' referenced as %UndefinedQueueSetting% "
            "is not defined",
        ),
    ],
)
def test_funchost_refuses_to_start_an_app_the_worker_would_refuse(
    run_app: AppRunner, app_name: str, expected: str
) -> None:
    # given an app the Python worker would not load
    host, _, _ = run_app.host_for(app_name)
    # when funchost starts it
    with pytest.raises(FuncHostError) as refused:
        host.start()
    # then it exits with status 2 and says which function is wrong and why
    assert refused.value.returncode == 2
    assert expected in refused.value.log
    assert "Host started" not in refused.value.log


def test_an_app_whose_import_fails_is_refused_with_the_traceback(run_app: AppRunner) -> None:
    # given an app whose module raises on import
    host, app_dir, _ = run_app.host_for("bad_unbound_param")
    (app_dir / "function_app.py").write_text("raise ImportError('missing dependency qwerty')\n")
    # when funchost starts it
    with pytest.raises(FuncHostError) as refused:
        host.start()
    # then it exits with status 2 and shows the app's own error
    assert refused.value.returncode == 2
    assert "ImportError: missing dependency qwerty" in refused.value.log
