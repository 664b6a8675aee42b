"""Queue sample app for funchost's tests.

Every trigger appends what it saw, as one JSON line, to the file named by the
FUNCHOST_TEST_RECORDS setting, so a test can see failed invocations too.
"""

import json
import os
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_lock = threading.Lock()


def record(function: str, msg: func.QueueMessage, **extra: object) -> None:
    line = {
        "function": function,
        "id": msg.id,
        "body": msg.get_body().decode("utf-8"),
        "dequeue_count": msg.dequeue_count,
        **extra,
    }
    with _lock, open(os.environ["FUNCHOST_TEST_RECORDS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="%ChainStartQueue%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
    msg.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


@app.route(route="publish", methods=["POST"])
@app.queue_output(arg_name="msg", queue_name="%OutboxQueue%", connection="AzureWebJobsStorage")
def publish(req: func.HttpRequest, msg: func.Out[str]) -> func.HttpResponse:
    msg.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%ChainStartQueue%", connection="AzureWebJobsStorage")
@app.queue_output(
    arg_name="$return", queue_name="%ChainMiddleQueue%", connection="AzureWebJobsStorage"
)
def chain_first(msg: func.QueueMessage) -> str:
    return msg.get_body().decode("utf-8") + " -> chain_first"


@app.queue_trigger(
    arg_name="msg", queue_name="%ChainMiddleQueue%", connection="AzureWebJobsStorage"
)
def chain_last(msg: func.QueueMessage) -> None:
    record("chain_last", msg)


@app.queue_trigger(arg_name="msg", queue_name="%FlakyQueue%", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage) -> None:
    record("flaky", msg)
    if msg.dequeue_count < 2:
        raise RuntimeError("first delivery fails on purpose")


@app.queue_trigger(arg_name="msg", queue_name="%PoisonQueue%", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    record("always_fails", msg)
    raise RuntimeError("always fails on purpose")


@app.queue_trigger(arg_name="msg", queue_name="%EchoQueue%", connection="AzureWebJobsStorage")
def echo(msg: func.QueueMessage) -> None:
    record("echo", msg)


@app.queue_trigger(arg_name="msg", queue_name="%SlowQueue%", connection="AzureWebJobsStorage")
def slow(msg: func.QueueMessage) -> None:
    record("slow", msg, phase="started")
    if msg.dequeue_count == 1:
        time.sleep(60)  # the test kills the host meanwhile
    record("slow", msg, phase="finished")
