"""The price book (`shared/pricing/data/pricebook.json`) and `shared.pricing.formulas`.

The worked examples of the Network API v2 issue are here as written there: IonQ Forte on
Braket, 1000 shots = 80.30 USD; IonQ on Azure, Bell (1 H, 1 CX), 1000 shots = 13.61 USD
without error mitigation.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from shared.circuits import CircuitLimits, ParsedCircuit, parse_circuit
from shared.pricing.book import PRICEBOOK_PATH, CostModel, cost_model, parse_pricebook, pricebook
from shared.pricing.formulas import GateCounts, gate_counts, price
from shared.suppliers.catalog import catalog, supplier
from tests.circuits import BELL

V2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
BELL_GATES = GateCounts(n1q=1, n2q=1, measurements=2)


def parsed(qasm: str) -> ParsedCircuit:
    return parse_circuit(qasm, CircuitLimits(262_144, 64, 1024, 1_000_000, 100_000))


def cost_of(supplier_id: str, target: str) -> CostModel:
    cost = cost_model(supplier(supplier_id).target(target))
    assert cost is not None
    return cost


# --- the worked examples ----------------------------------------------------------


def test_ionq_forte_on_braket_costs_80_30_usd_for_1000_shots() -> None:
    # given IonQ Forte on Braket: 0.30 USD per task + 0.08 USD per shot
    cost = cost_of("braket", "forte-1")
    # when a 1000-shot task is priced
    quote = price(cost, shots=1000, gates=BELL_GATES, run_seconds=0.0)
    # then
    assert (quote.amount, quote.currency) == (80.30, "USD")
    assert quote.formula == "0.30 + 0.08 x 1000 shots = 80.30 USD"


def test_a_bell_circuit_on_ionq_on_azure_costs_13_61_usd_without_error_mitigation() -> None:
    # given a Bell circuit (1 H, 1 CX) and IonQ on Azure Quantum
    gates = gate_counts(parsed(BELL))
    cost = cost_of("azure_quantum", "ionq.qpu.forte-1")
    # when 1000 shots are priced without error mitigation
    quote = price(cost, shots=1000, gates=gates, run_seconds=0.0)
    # then AQT = 12.4166 + 0.000220 x 1 x 1000 + 0.000975 x 1 x 1000 = 13.6116, rounded
    assert (gates.n1q, gates.n2q) == (1, 1)
    assert (quote.amount, quote.currency) == (13.61, "USD")
    assert quote.formula.endswith("= 13.61 USD") and "12.4166" in quote.formula


def test_error_mitigation_makes_m_97_50_and_98_695_rounds_half_up_to_98_70() -> None:
    # given the same Bell circuit on IonQ on Azure Quantum
    cost = cost_of("azure_quantum", "ionq.qpu.aria-1")
    # when 1000 shots are priced with error mitigation
    quote = price(cost, shots=1000, gates=BELL_GATES, run_seconds=0.0, error_mitigation=True)
    # then 97.50 + 0.22 + 0.975 = 98.695 exactly (decimal arithmetic), half up to 98.70
    assert quote.amount == 98.70
    assert quote.formula.startswith("97.50") and quote.formula.endswith("= 98.70 USD")


def test_error_mitigation_changes_nothing_where_the_price_book_has_no_figure_for_it() -> None:
    # given a target with one per-task price
    cost = cost_of("braket", "forte-1")
    # when / then
    assert price(cost, shots=10, gates=BELL_GATES, run_seconds=0, error_mitigation=True) == price(
        cost, shots=10, gates=BELL_GATES, run_seconds=0
    )


# --- the other formulas ---------------------------------------------------------------------


def test_quantinuum_prices_a_bell_circuit_in_hqc_by_its_gates_and_measurements() -> None:
    # given a Bell circuit: N1q = 1, N2q = 1, Nm = 2
    gates = gate_counts(parsed(BELL))
    expected = 5 + 1000 * (1 + 10 * 1 + 5 * 2) / 5000  # HQC = 5 + shots (N1q + 10 N2q + 5 Nm)/5000
    for target in ("quantinuum.qpu.h2-1", "quantinuum.sim.h2-2e"):  # emulators charge the same
        # when 1000 shots are priced
        quote = price(cost_of("azure_quantum", target), shots=1000, gates=gates, run_seconds=0)
        # then
        assert expected == pytest.approx(9.2)
        assert (quote.amount, quote.currency) == (9.2, "HQC")
        assert quote.formula.endswith("= 9.20 HQC")


def test_a_per_minute_simulator_bills_at_least_3_seconds_then_whole_seconds() -> None:
    # given TN1 on Braket: 0.275 USD per minute, billed per second with a 3-second minimum
    cost = cost_of("braket", "tn1")

    def amount(seconds: float) -> float:
        return price(cost, shots=1000, gates=BELL_GATES, run_seconds=seconds).amount

    # when / then: half a second is billed as 3 s (0.01375 USD, 0.01 rounded)
    assert amount(0.5) == amount(3.0) == 0.01
    quote = price(cost, shots=1000, gates=BELL_GATES, run_seconds=0.5)
    assert "3 s" in quote.formula and "0.5 s run" in quote.formula
    # and past the minimum, a started second counts whole: 120.2 s is 121 s = 0.5546 USD
    assert amount(120.2) == 0.55 and amount(121.0) == 0.55
    assert amount(240.0) == 1.10  # 0.275 x 4 minutes


def test_ibm_bills_1_60_usd_per_second_of_qpu_time() -> None:
    # given an IBM backend: 96 USD per minute of QPU time, pay-as-you-go
    cost = cost_of("ibm_quantum", "ibm_brisbane")
    # when a task used 2.5 s of QPU time
    quote = price(cost, shots=4000, gates=BELL_GATES, run_seconds=2.5)
    # then
    assert (quote.amount, quote.currency) == (4.00, "USD")
    assert price(cost, shots=1, gates=BELL_GATES, run_seconds=60).amount == 96.00


def test_rigetti_on_azure_bills_0_013_usd_per_started_10_ms() -> None:
    # given Rigetti's QPU on Azure Quantum
    cost = cost_of("azure_quantum", "rigetti.qpu.cepheus-1-108q")
    # when a task ran 123 ms: thirteen started 10 ms slices
    quote = price(cost, shots=1000, gates=BELL_GATES, run_seconds=0.123)
    # then 13 x 0.013 = 0.169 USD
    assert quote.amount == 0.17


@pytest.mark.parametrize(
    ("supplier_id", "target"),
    [
        ("azure_quantum", "ionq.simulator"),
        ("azure_quantum", "rigetti.sim.qvm"),
        ("azure_quantum", "quantinuum.sim.h2-1sc"),
    ],
)
def test_a_free_target_costs_nothing_and_says_free(supplier_id: str, target: str) -> None:
    # given a free target
    cost = cost_of(supplier_id, target)
    # when
    quote = price(cost, shots=10_000, gates=BELL_GATES, run_seconds=30.0)
    # then
    assert (quote.amount, quote.formula) == (0.0, "free")
    assert quote.source and quote.as_of and quote.pricebook_version == pricebook().version


def test_negative_shots_or_seconds_are_refused() -> None:
    cost = cost_of("braket", "forte-1")
    with pytest.raises(ValueError):
        price(cost, shots=-1, gates=BELL_GATES, run_seconds=0)
    with pytest.raises(ValueError):
        price(cost, shots=1, gates=BELL_GATES, run_seconds=-0.1)


# --- the book itself -------------------------------------------------------------------------


def test_the_price_book_has_a_date_version_and_a_description() -> None:
    # given / when
    book = pricebook()
    raw = json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8"))
    # then
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", book.version) and book.version == raw["version"]
    assert book.description


def test_every_catalog_target_has_a_price_with_its_source_date_and_book_version() -> None:
    for info in catalog().values():
        for target in info.targets():
            cost = cost_model(target)
            assert cost is not None, target.name
            assert cost.unit in ("USD", "HQC"), target.name
            assert cost.formula and cost.source and cost.as_of, target.name
            assert cost.version == pricebook().version, target.name
            assert "version" in cost.to_dict()


def test_a_catalog_target_without_a_price_is_an_error_at_load() -> None:
    # given a price book without IonQ Forte's entry on Braket
    raw = json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8"))
    raw["entries"] = [e for e in raw["entries"] if e["id"] != "braket/ionq/forte"]
    # when / then
    with pytest.raises(ValueError, match="forte-1: no price"):
        parse_pricebook(raw)


def test_a_price_for_a_target_the_catalog_lacks_is_an_error_at_load() -> None:
    # given an entry naming a target no catalog has
    raw = json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8"))
    raw["entries"][0]["targets"].append("ionq.qpu.harmony")
    # when / then
    with pytest.raises(ValueError, match="ionq.qpu.harmony"):
        parse_pricebook(raw)


@pytest.mark.parametrize(
    "change",
    [
        {"version": ""},
        {"entries": [{"id": "x", "supplier": "braket", "targets": ["sv1"], "unit": "EUR"}]},
        {"entries": [{"id": "x", "supplier": "braket", "targets": ["sv1"], "per_hour": 1}]},
    ],
    ids=["no version", "unknown currency, no source", "unknown rate"],
)
def test_a_malformed_price_book_is_refused(change: dict[str, object]) -> None:
    raw = json.loads(PRICEBOOK_PATH.read_text(encoding="utf-8"))
    with pytest.raises((ValueError, TypeError)):
        parse_pricebook({**raw, **change})


def test_the_catalog_files_carry_no_prices() -> None:
    from shared.suppliers.devices import DATA_DIR

    for path in sorted((DATA_DIR / "catalog").glob("*.json")):
        assert '"cost"' not in path.read_text(encoding="utf-8"), path.name


# --- gate counts -----------------------------------------------------------------------------


def test_a_gate_on_k_qubits_counts_as_6_x_k_minus_2_two_qubit_gates() -> None:
    # given a Toffoli (3 qubits) and a 3-controlled X (4 qubits) after a Bell pair
    qasm = V2 + (
        "qreg q[4];\ncreg c[4];\nh q[0];\ncx q[0],q[1];\nccx q[0],q[1],q[2];\n"
        "c3x q[0],q[1],q[2],q[3];\nbarrier q;\nmeasure q -> c;\n"
    )
    # when
    counts = gate_counts(parsed(qasm))
    # then ccx = 6 x (3 - 2), c3x = 6 x (4 - 2); the barrier counts nothing
    assert counts == GateCounts(n1q=1, n2q=1 + 6 + 12, measurements=4)


def test_a_circuit_measuring_nothing_counts_one_measurement_per_qubit() -> None:
    # given a circuit without a measurement: the gateway measures every qubit
    qasm = V2 + "qreg q[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\n"
    # when
    counts = gate_counts(parsed(qasm))
    # then
    assert counts == GateCounts(n1q=1, n2q=2, measurements=3)


def test_a_programs_own_gate_counts_as_what_its_definition_applies() -> None:
    # given a gate the program defines, applied twice, and a reset (a state preparation)
    qasm = V2 + (
        "gate bell a, b { h a; cx a, b; }\nqreg q[2];\ncreg c[2];\n"
        "bell q[0], q[1];\nbell q[1], q[0];\nreset q[0];\nmeasure q -> c;\n"
    )
    # when
    counts = gate_counts(parsed(qasm))
    # then
    assert counts == GateCounts(n1q=2, n2q=2, measurements=3)


def test_each_control_flow_block_counts_once() -> None:
    # given a for loop of 3 iterations and an if/else (OpenQASM 3)
    qasm = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\n'
        "for int i in [0:2] { cx q[0], q[1]; }\nc[0] = measure q[0];\n"
        "if (c[0]) { x q[1]; } else { z q[1]; }\nc[1] = measure q[1];\n"
    )
    # when
    counts = gate_counts(parsed(qasm))
    # then the loop body once, both branches once
    assert counts == GateCounts(n1q=3, n2q=1, measurements=2)


def test_the_price_is_computed_from_the_catalog_cost_not_a_copy() -> None:
    # given a price book change (a new version and a new per-shot rate)
    cost = replace(cost_of("braket", "forte-1"), per_shot=0.05, version="2099-01-01")
    # when
    quote = price(cost, shots=100, gates=BELL_GATES, run_seconds=0)
    # then
    assert (quote.amount, quote.pricebook_version) == (5.30, "2099-01-01")
