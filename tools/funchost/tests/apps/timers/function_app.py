"""Timer sample app for funchost's tests: each firing appends a JSON line to
the file named by the FUNCHOST_TEST_RECORDS setting."""

import json
import os
import threading
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp()
_lock = threading.Lock()


def record(function: str, timer: func.TimerRequest) -> None:
    line = {
        "function": function,
        "past_due": timer.past_due,
        "at": datetime.now(UTC).isoformat(),
    }
    with _lock, open(os.environ["FUNCHOST_TEST_RECORDS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
def every_second(timer: func.TimerRequest) -> None:
    record("every_second", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def yearly_with_startup_run(timer: func.TimerRequest) -> None:
    record("yearly_with_startup_run", timer)
