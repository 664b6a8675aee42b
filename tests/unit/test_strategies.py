"""Routing strategies are pure functions over estimates: each picks what it promises."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.errors import ApiError
from shared.network.estimates import BackendEstimate
from shared.network.strategies import Strategy, choose, every_choice, parse
from shared.pricing.formulas import Price
from shared.suppliers.backends import find


def usd(amount: float) -> Price:
    return Price(amount, "USD", "test", "test", "2026", "test")


def est(
    backend: str,
    *,
    wait: float = 0.0,
    run: float = 1.0,
    fidelity: float = 0.9,
    cost: float | None = 0.0,
    device_cost: float | None = 1.0,
    online: bool = True,
    fits: bool = True,
) -> BackendEstimate:
    return BackendEstimate(
        backend=find(backend),
        mode="emulated",
        online=online,
        fits=fits,
        reasons=() if fits else ("CIRCUIT_DOES_NOT_FIT: too wide",),
        fidelity=fidelity,
        run_s=run,
        device_run_s=run,
        wait_s=wait,
        queue_depth=0,
        cost=None if cost is None else usd(cost),
        device_cost=None if device_cost is None else usd(device_cost),
    )


def ids(chosen: list[BackendEstimate]) -> list[str]:
    return [e.backend.id for e in chosen]


def test_fastest_takes_the_lowest_wait_plus_run_time() -> None:
    # given a quick run behind a queue and a slower run with no queue
    estimates = [est("ibm_brisbane", wait=5.0, run=0.5), est("ionq_simulator", wait=0.0, run=2.0)]
    # when / then
    assert ids(choose(Strategy.FASTEST, estimates)) == ["ionq_simulator"]


def test_best_fidelity_takes_the_highest_estimated_success_probability() -> None:
    estimates = [est("ibm_torino", fidelity=0.81), est("ibm_kyiv", fidelity=0.98)]
    assert ids(choose(Strategy.BEST_FIDELITY, estimates)) == ["ibm_kyiv"]


def test_cost_optimized_ranks_by_this_runs_cost_then_the_real_devices() -> None:
    # given every run free (emulated): the real device's cost decides
    estimates = [
        est("braket_ionq_forte_1", cost=0.0, device_cost=80.30),
        est("braket_iqm_garnet", cost=0.0, device_cost=1.75),
        est("quantinuum_qpu_h2_1", cost=None, device_cost=None),
    ]
    assert ids(choose(Strategy.COST_OPTIMIZED, estimates)) == ["braket_iqm_garnet"]


def test_credit_priced_backends_rank_after_usd_priced_ones() -> None:
    credits = replace(est("quantinuum_qpu_h2_1"), device_cost=Price(9.2, "HQC", "", "", "", ""))
    assert ids(choose(Strategy.COST_OPTIMIZED, [credits, est("braket_sv1", device_cost=50.0)])) == [
        "braket_sv1"
    ]


def test_round_robin_takes_turns_in_id_order() -> None:
    estimates = [est("ionq_simulator"), est("braket_sv1"), est("qiskit_aer")]
    picks = [ids(choose(Strategy.ROUND_ROBIN, estimates, turn=t))[0] for t in range(4)]
    assert picks == ["braket_sv1", "ionq_simulator", "qiskit_aer", "braket_sv1"]


def test_ordered_and_all_keep_every_usable_backend_in_the_given_order() -> None:
    estimates = [est("qiskit_aer"), est("ibm_brisbane", fits=False), est("braket_sv1")]
    assert ids(choose(Strategy.ORDERED, estimates)) == ["qiskit_aer", "braket_sv1"]
    assert ids(choose(Strategy.ALL, estimates)) == ["qiskit_aer", "braket_sv1"]


def test_offline_or_misfit_backends_are_never_chosen() -> None:
    estimates = [est("ibm_kyiv", fidelity=0.99, online=False), est("ibm_torino", fidelity=0.8)]
    assert ids(choose(Strategy.BEST_FIDELITY, estimates)) == ["ibm_torino"]


def test_no_online_backend_is_503_no_backends() -> None:
    with pytest.raises(ApiError) as raised:
        choose(Strategy.FASTEST, [est("qiskit_aer", online=False)])
    assert (raised.value.status, raised.value.error_code) == (503, "NO_BACKENDS")


def test_a_circuit_that_fits_no_online_backend_is_400_with_the_reasons() -> None:
    with pytest.raises(ApiError) as raised:
        choose(Strategy.FASTEST, [est("ibm_brisbane", fits=False)])
    assert (raised.value.status, raised.value.error_code) == (400, "CIRCUIT_DOES_NOT_FIT")
    assert "ibm_brisbane: CIRCUIT_DOES_NOT_FIT: too wide" in raised.value.detail


def test_the_choice_does_not_depend_on_the_order_of_the_estimates() -> None:
    estimates = [est("braket_sv1", run=1.0), est("ionq_simulator", run=1.0), est("qiskit_aer")]
    for strategy in (Strategy.FASTEST, Strategy.BEST_FIDELITY, Strategy.COST_OPTIMIZED):
        assert choose(strategy, estimates) == choose(strategy, list(reversed(estimates)))


def test_an_unknown_strategy_is_400_invalid_strategy() -> None:
    with pytest.raises(ApiError) as raised:
        parse("quickest")
    assert (raised.value.status, raised.value.error_code) == (400, "INVALID_STRATEGY")
    assert parse(" Best_Fidelity ") is Strategy.BEST_FIDELITY


def test_every_choice_names_each_strategys_pick() -> None:
    chosen = every_choice([est("qiskit_aer", run=0.1), est("ibm_kyiv", fidelity=0.99, run=3.0)])
    assert chosen["fastest"] == ["qiskit_aer"]
    assert chosen["best_fidelity"] == ["ibm_kyiv"]
    assert chosen["all"] == ["qiskit_aer", "ibm_kyiv"]
