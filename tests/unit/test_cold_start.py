"""Importing the app must not pay for the cloud SDKs or the simulator (cold start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["braket", "azure.quantum", "qiskit_ibm_runtime", "qiskit_aer", "qiskit"]


def test_importing_function_app_imports_no_cloud_sdk_nor_qiskit() -> None:
    # given a fresh interpreter
    probe = (
        "import sys, function_app\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
        "for h in heavy))\n"
        "print(','.join(loaded))\n"
    )
    # when it imports function_app
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # then none of the heavy packages were loaded
    assert out.stdout.strip() == ""
