"""A trivial app for bench/funchost_bench.py: ping, a queue relay, a durable fan-out."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.queue_trigger(arg_name="msg", queue_name="bench-a", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="bench-b", connection="AzureWebJobsStorage")
def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(msg.get_body().decode())


@app.queue_trigger(arg_name="msg", queue_name="bench-b", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="bench-c", connection="AzureWebJobsStorage")
def sink(msg: func.QueueMessage) -> str:
    return msg.get_body().decode()


@app.route(route="fanout/{n:int}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_fanout(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    instance_id = await client.start_new("fanout", None, int(req.route_params["n"]))
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def fanout(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    n = context.get_input()
    results = yield context.task_all([context.call_activity("square", i) for i in range(n)])
    return sum(results)


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    return n * n
