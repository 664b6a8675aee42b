"""`shared.pricing.costs` and `devices`: what a job is charged and what an estimate shows, by
one rule: a cloud run costs its device's price book price, a local or emulated run nothing,
and the device's price is its list price either way."""

from __future__ import annotations

from decimal import Decimal

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.pricing.costs import FREE, estimated_prices, finished_job_cost, job_cost
from shared.pricing.devices import device_seconds
from shared.pricing.formulas import gate_counts
from shared.suppliers.catalog import supplier
from shared.suppliers.emulation import OnDevice
from tests.circuits import BELL

SV_MAX = 28


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 64, 1024, 1_000_000, 100_000))


def test_a_job_on_the_local_simulator_costs_nothing_and_lists_nothing() -> None:
    assert job_cost(
        None, "qiskit_aer", parsed(BELL), 1000, None, statevector_max_qubits=SV_MAX
    ) == (FREE)


def test_a_cloud_run_is_charged_its_list_price_and_an_emulated_one_nothing() -> None:
    # IonQ Forte on Braket: 0.30 USD per task + 0.08 USD per shot
    cloud = job_cost(
        "braket", "forte-1", parsed(BELL), 1000, "cloud", statevector_max_qubits=SV_MAX
    )
    emulated = job_cost(
        "braket", "forte-1", parsed(BELL), 1000, "emulated", statevector_max_qubits=SV_MAX
    )

    assert (cloud.cost, cloud.list_cost, cloud.currency) == (
        Decimal("80.3"),
        Decimal("80.3"),
        "USD",
    )
    assert (emulated.cost, emulated.list_cost) == (Decimal(0), Decimal("80.3"))
    assert cloud.price_source.startswith("pricebook ")


def test_a_finished_job_on_a_backend_the_catalog_lacks_is_charged_nothing_and_says_why() -> None:
    found = finished_job_cost(
        "job-1",
        "braket",
        "no-such-device",
        parsed(BELL),
        100,
        "cloud",
        statevector_max_qubits=SV_MAX,
        execution_time_ms=5.0,
    )

    assert (found.cost, found.list_cost) == (Decimal(0), Decimal(0))
    assert found.price_source.startswith("unpriced: ")


def test_an_emulated_estimate_is_free_and_shows_what_the_device_would_cost() -> None:
    target = supplier("braket").target("forte-1")
    gates = gate_counts(parsed(BELL))

    run, device = estimated_prices(target, "emulated", shots=1000, gates=gates, run_seconds=1.0)
    in_cloud, same = estimated_prices(target, "cloud", shots=1000, gates=gates, run_seconds=1.0)

    assert run is not None and device is not None
    assert (run.amount, run.formula) == (0.0, "emulated: free")
    assert device.amount == 80.3 and in_cloud == same == device


def test_an_ibm_device_takes_its_repetition_delay_after_every_shot() -> None:
    ibm = supplier("ibm_quantum").target("ibm_brisbane")
    braket = supplier("braket").target("forte-1")
    mapped = OnDevice(fidelity=0.9, shot_seconds=0.001, physical_qubits=(0, 1), two_qubit_gates=1)

    assert device_seconds(ibm, mapped, 1000) == 1000 * (0.001 + 250e-6)
    assert device_seconds(braket, mapped, 1000) == 1000 * 0.001
