"""The host's log carries the app's lines, not its libraries': a circuit run through the app,
in a process set up as the Functions worker sets one up (the root logger at DEBUG with its
handler, then `function_app` imported), hands the handlers no record of qiskit's (or another
library's) below WARNING, unless QCOS_LIBRARY_LOG_LEVEL asks for them.

Each case runs in a fresh interpreter: logger levels are process-wide, and the point is what
importing the app does to them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from funchost.testing import Azurite

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "qcos_admin_" + "l" * 40

# The worker's part, then the app's: a Bell circuit (stabilizer) and a non-Clifford one
# (statevector, transpiled), each run in the request by POST /execute-sync.
WORKER = r"""
import json, logging, sys, uuid

records = []

class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelno))

root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(Keep())

import azure.functions as func
import function_app  # noqa: F401  (what the worker imports; it registers the blueprints)
from shared.accounts.tiers import TierName
from shared.api import jobs
from shared.services import services

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\n'
circuits = [
    V2 + "h q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;\n",
    V2 + "h q[0];\nt q[0];\ncx q[0],q[1];\nry(0.3) q[2];\ncx q[1],q[2];\nmeasure q -> c;\n",
]
created = services().accounts.create_user(
    f"logs-{uuid.uuid4().hex[:10]}@example.com", TierName("professional"), ""
)
statuses = []
for qasm in circuits:
    request = func.HttpRequest(
        method="POST",
        url="http://127.0.0.1:7071/execute-sync",
        headers={"X-API-Key": created.api_key},
        params={},
        route_params={},
        body=json.dumps({"qasm": qasm, "shots": 100}).encode(),
    )
    statuses.append(jobs.execute_sync(request).status_code)
print(json.dumps({"statuses": statuses, "records": records}))
"""


def run_worker(azurite: Azurite, **settings: str) -> tuple[list[int], list[tuple[str, int]]]:
    env = {k: v for k, v in os.environ.items() if k != "QCOS_LIBRARY_LOG_LEVEL"}
    env.update(
        AzureWebJobsStorage=azurite.connection_string,
        QCOS_ADMIN_API_KEY=ADMIN_KEY,
        PYTHONPATH=str(ROOT),
        **settings,
    )
    done = subprocess.run(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["statuses"], [(name, level) for name, level in answer["records"]]


def below_warning(records: list[tuple[str, int]], prefix: str) -> list[tuple[str, int]]:
    return [
        (name, level)
        for name, level in records
        if (name == prefix or name.startswith(prefix + ".")) and level < 30
    ]


@pytest.mark.timeout(300)
def test_a_circuit_run_logs_no_qiskit_line_below_warning_with_the_root_logger_at_debug(
    azurite: Azurite,
) -> None:
    statuses, records = run_worker(azurite)

    assert statuses == [200, 200]
    for library in ("qiskit", "qiskit_aer", "stevedore"):
        assert below_warning(records, library) == [], library


@pytest.mark.timeout(300)
def test_the_library_log_level_setting_lets_them_through(azurite: Azurite) -> None:
    statuses, records = run_worker(azurite, QCOS_LIBRARY_LOG_LEVEL="INFO")

    assert statuses == [200, 200]
    assert below_warning(records, "qiskit"), "qiskit's INFO lines (the pass manager's)"
    assert not below_warning([(n, lv) for n, lv in records if lv < 20], "qiskit")  # not DEBUG


def test_the_library_log_level_setting_reads_level_names_and_refuses_others() -> None:
    from shared.config import SettingsError, library_log_level

    assert library_log_level({}) == library_log_level({"QCOS_LIBRARY_LOG_LEVEL": " "}) == 30
    assert library_log_level({"QCOS_LIBRARY_LOG_LEVEL": "info"}) == 20
    assert library_log_level({"QCOS_LIBRARY_LOG_LEVEL": "DEBUG"}) == 10
    assert library_log_level({"QCOS_LIBRARY_LOG_LEVEL": "5"}) == 5
    with pytest.raises(SettingsError, match="QCOS_LIBRARY_LOG_LEVEL"):
        library_log_level({"QCOS_LIBRARY_LOG_LEVEL": "loud"})
