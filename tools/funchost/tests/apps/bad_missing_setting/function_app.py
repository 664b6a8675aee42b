"""Refused at start: `listens` reads a queue named by a setting nobody defines."""

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(
    arg_name="msg", queue_name="%UndefinedQueueSetting%", connection="AzureWebJobsStorage"
)
def listens(msg: func.QueueMessage) -> None:
    pass
