"""What the network API costs: a fan-out beside its own backends, and an estimate.

Under funchost on Azurite (the whole stack: HTTP, the durable engine, Table Storage, the Aer
pool), with every supplier emulated:

- `strategy: all` over five emulated backends, wall time of the POST (it waits for the
  result), beside the slowest of the five run alone (`backends: [one]`) and beside the sum of
  the five alone. Two circuits: a Bell pair (the gateway's overhead dominates) and an 8-qubit
  non-Clifford circuit at 4000 shots (the noisy emulations' work dominates).
- the same single-backend POST on `qiskit_aer` beside `POST /execute-sync` (v1) on the same
  circuit: what a network job's orchestration adds to one run.
- `POST /api/v2/network/estimate` for 20 backends: the first call of the process (it loads the
  IBM snapshots) and then the median of warm calls.
"""

from __future__ import annotations

import http.client
import statistics
import time
import uuid
from typing import Any

from _common import BELL, call, create_user, gateway_host
from funchost.testing import Azurite

ADMIN = "qcos_admin_" + "b" * 40
FIVE = ["ionq_simulator", "braket_sv1", "rigetti_sim_qvm", "ibm_brisbane", "braket_iqm_garnet"]
ROUNDS = 5


def wide(n: int) -> str:
    body = "".join(f"h q[{i}];\nt q[{i}];\n" for i in range(n))
    body += "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\ncreg c[{n}];\n{body}'
        "measure q -> c;\n"
    )


def timed(conn: http.client.HTTPConnection, path: str, body: dict[str, Any], key: str) -> float:
    started = time.perf_counter()
    status, answer = call(conn, "POST", path, body, {"X-API-Key": key})
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {str(answer)[:300]}")
    return elapsed


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def fan_out(conn: http.client.HTTPConnection, key: str, qasm: str, shots: int, label: str) -> None:
    path = "/api/v2/network/execute"
    alone: dict[str, list[float]] = {b: [] for b in FIVE}
    together: list[float] = []
    fan_body = {"qasm": qasm, "shots": shots, "backends": FIVE, "strategy": "all"}
    timed(conn, path, fan_body, key)  # warm: every device's mapping and noise model
    for _ in range(ROUNDS):
        for backend in FIVE:
            body = {"qasm": qasm, "shots": shots, "backends": [backend]}
            alone[backend].append(timed(conn, path, body, key))
        together.append(timed(conn, path, fan_body, key))
    singles = {b: median_ms(t) for b, t in alone.items()}
    slowest = max(singles.values())
    total = sum(singles.values())
    fan = median_ms(together)
    print(f"\n{label}: medians of {ROUNDS} rounds, ms")
    for backend, ms in singles.items():
        print(f"  {backend:<20} alone {ms:8.1f}")
    print(f"  strategy all over the five   {fan:8.1f}")
    print(f"  slowest alone                {slowest:8.1f}   fan-out/slowest {fan / slowest:.2f}")
    print(f"  sum of the five alone        {total:8.1f}   fan-out/sum     {fan / total:.2f}")


def single_overhead(conn: http.client.HTTPConnection, key: str) -> None:
    v2 = {"qasm": BELL, "shots": 1000, "backends": ["qiskit_aer"]}
    v1 = {"qasm": BELL, "shots": 1000}
    for _ in range(3):
        timed(conn, "/api/v2/network/execute", v2, key)
        timed(conn, "/execute-sync", v1, key)
    network, sync = [], []
    for _ in range(ROUNDS * 4):
        network.append(timed(conn, "/api/v2/network/execute", v2, key))
        sync.append(timed(conn, "/execute-sync", v1, key))
    n, s = median_ms(network), median_ms(sync)
    print(f"\nBell, 1000 shots on qiskit_aer, medians of {ROUNDS * 4}, ms")
    print(f"  POST /api/v2/network/execute  {n:8.1f}")
    print(f"  POST /execute-sync (v1)       {s:8.1f}   network / sync = {n / s:.2f}")


def estimate(conn: http.client.HTTPConnection, key: str) -> None:
    status, listed = call(conn, "GET", "/api/v2/network/backends", None, {"X-API-Key": key})
    assert status == 200, listed
    gate_model = [b["id"] for b in listed["data"]["backends"] if b["kind"] != "analog"]
    twenty = gate_model[:20]
    body = {"qasm": BELL, "shots": 1000, "backends": twenty}
    first = timed(conn, "/api/v2/network/estimate", body, key)
    warm = [timed(conn, "/api/v2/network/estimate", body, key) for _ in range(ROUNDS * 2)]
    print(f"\nPOST /api/v2/network/estimate, {len(twenty)} backends (Bell, 1000 shots), ms")
    print(f"  first call of the process     {first * 1000:8.1f}")
    print(f"  warm, median of {ROUNDS * 2}           {median_ms(warm):8.1f}")


def main() -> None:
    with Azurite() as azurite, gateway_host(azurite, ADMIN) as host:
        conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=600)
        key = create_user(conn, f"bench-{uuid.uuid4().hex[:8]}@example.com", ADMIN)
        estimate(conn, key)
        fan_out(conn, key, BELL, 1000, "Bell pair, 1000 shots")
        fan_out(conn, key, wide(8), 4000, "8 qubits, h+t+cx chain, 4000 shots")
        single_overhead(conn, key)


if __name__ == "__main__":
    main()
