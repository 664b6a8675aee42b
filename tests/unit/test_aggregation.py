"""Result aggregation: each method on hand-computed examples, validation, and properties."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import LimitExceeded, ValidationFailed
from shared.network.aggregation import (
    ENSEMBLE_NOTE,
    MAX_BITSTRINGS,
    MAX_RESULTS,
    METHODS,
    BackendResult,
    Method,
    aggregate,
    confidence,
)

FAST = settings(max_examples=100, deadline=None)


# --- weighted_average --------------------------------------------------------------------


def test_weighted_average_weights_each_distribution_by_its_fidelity() -> None:
    # given p_a = (0.75, 0.25) with weight 1 and p_b = (0.25, 0.75) with weight 3
    results = [
        BackendResult("a", {"0": 3, "1": 1}, weight=1.0),
        BackendResult("b", {"0": 1, "1": 3}, weight=3.0),
    ]
    # when
    agg = aggregate(results, Method.WEIGHTED_AVERAGE, shots=8)
    # then p(0) = (0.75 + 3 * 0.25) / 4 = 0.375, p(1) = 0.625
    assert agg.counts == {"0": 3, "1": 5}
    assert agg.weights == {"a": 0.25, "b": 0.75}
    assert agg.distributions == {"a": {"0": 0.75, "1": 0.25}, "b": {"0": 0.25, "1": 0.75}}


def test_a_missing_weight_counts_as_one() -> None:
    results = [BackendResult("a", {"0": 10}), BackendResult("b", {"1": 10}, weight=1.0)]
    agg = aggregate(results, Method.WEIGHTED_AVERAGE, shots=10)
    assert agg.counts == {"0": 5, "1": 5}
    assert agg.weights == {"a": 0.5, "b": 0.5}


def test_shots_default_to_the_largest_shot_count_of_the_results() -> None:
    results = [BackendResult("a", {"0": 100}), BackendResult("b", {"0": 4, "1": 6})]
    agg = aggregate(results, Method.WEIGHTED_AVERAGE)
    assert sum(agg.counts.values()) == 100
    assert agg.counts == {"0": 70, "1": 30}


@pytest.mark.parametrize("method", list(Method))
def test_only_the_ratios_of_the_weights_matter(method: Method) -> None:
    # given the same weight ratios, one pair large enough to overflow when squared
    def results(scale: float) -> list[BackendResult]:
        return [
            BackendResult("a", {"0": 7, "1": 3}, weight=1.0 * scale),
            BackendResult("b", {"0": 2, "1": 8}, weight=3.0 * scale),
        ]

    # when / then
    small, huge = aggregate(results(1.0), method), aggregate(results(1e300), method)
    assert small.counts == huge.counts
    assert small.weights == pytest.approx(huge.weights)


# --- confidence_weighted -----------------------------------------------------------------


def test_confidence_weighted_weighs_by_shots() -> None:
    # given equal fidelities: v_a = 100, v_b = 10
    results = [BackendResult("a", {"0": 90, "1": 10}), BackendResult("b", {"0": 5, "1": 5})]
    # when
    agg = aggregate(results, Method.CONFIDENCE_WEIGHTED, shots=110)
    # then p(0) = (100 * 0.9 + 10 * 0.5) / 110 = 95 / 110
    assert agg.counts == {"0": 95, "1": 15}
    assert agg.weights == pytest.approx({"a": 10 / 11, "b": 1 / 11})


def test_confidence_weighted_weighs_by_the_square_of_the_fidelity() -> None:
    # given equal shots, fidelities 0.5 and 1: v = 100 * 0.25 and 100 * 1
    results = [
        BackendResult("a", {"0": 100}, weight=0.5),
        BackendResult("b", {"1": 100}, weight=1.0),
    ]
    agg = aggregate(results, Method.CONFIDENCE_WEIGHTED, shots=100)
    assert agg.counts == {"0": 20, "1": 80}
    assert agg.weights == pytest.approx({"a": 0.2, "b": 0.8})


def test_confidence_weighted_is_an_equal_average_for_equal_shots_and_fidelities() -> None:
    results = [
        BackendResult("a", {"0": 30, "1": 70}, weight=0.9),
        BackendResult("b", {"0": 50, "1": 50}, weight=0.9),
    ]
    agg = aggregate(results, Method.CONFIDENCE_WEIGHTED)
    assert agg.weights == {"a": 0.5, "b": 0.5}
    assert agg.counts == {"0": 40, "1": 60}


# --- majority_vote -----------------------------------------------------------------------


def test_majority_vote_keeps_what_a_majority_sees_above_the_uniform_level() -> None:
    # given two qubits (uniform level 1/4); only 00 and 11 reach it on every backend
    results = [
        BackendResult("a", {"00": 45, "11": 45, "01": 10}),
        BackendResult("b", {"00": 40, "11": 40, "10": 20}),
        BackendResult("c", {"00": 50, "11": 30, "01": 20}),
    ]
    # when
    agg = aggregate(results, Method.MAJORITY_VOTE, shots=100)
    # then averages 0.45 and 0.3833.. renormalised over the kept mass 0.8333..
    assert agg.counts == {"00": 54, "11": 46}
    assert agg.weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_majority_vote_needs_a_strict_majority_of_the_weight() -> None:
    # given "1" at or above 1/2 on a and b (weight 2 of 5), "0" on c alone (weight 3 of 5)
    results = [
        BackendResult("a", {"0": 4, "1": 6}, weight=1.0),
        BackendResult("b", {"0": 4, "1": 6}, weight=1.0),
        BackendResult("c", {"0": 10}, weight=3.0),
    ]
    # when
    agg = aggregate(results, Method.MAJORITY_VOTE, shots=10)
    # then only "0" is kept
    assert agg.counts == {"0": 10}


def test_majority_vote_keeps_a_bitstring_exactly_at_the_uniform_level() -> None:
    results = [BackendResult("a", {"0": 5, "1": 5})]
    assert aggregate(results, Method.MAJORITY_VOTE).counts == {"0": 5, "1": 5}


def test_majority_vote_falls_back_to_the_weighted_average_when_nothing_is_kept() -> None:
    # given each outcome supported by exactly half of the weight
    results = [BackendResult("a", {"0": 10}), BackendResult("b", {"1": 10})]
    agg = aggregate(results, Method.MAJORITY_VOTE, shots=10)
    assert agg.counts == {"0": 5, "1": 5}


# --- median ------------------------------------------------------------------------------


def test_median_takes_each_bitstrings_median_and_renormalises() -> None:
    # given medians 00: 0.5, 11: 0.4, 01: 0 (missing counts as 0)
    results = [
        BackendResult("a", {"00": 6, "11": 4}, weight=0.1),
        BackendResult("b", {"00": 5, "11": 5}),
        BackendResult("c", {"00": 2, "01": 8}, weight=5.0),
    ]
    # when
    agg = aggregate(results, Method.MEDIAN, shots=90)
    # then weights are ignored
    assert agg.counts == {"00": 50, "11": 40}
    assert agg.weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_median_of_an_even_number_of_backends_is_the_mean_of_the_middle_two() -> None:
    results = [BackendResult("a", {"0": 8, "1": 2}), BackendResult("b", {"0": 6, "1": 4})]
    assert aggregate(results, Method.MEDIAN).counts == {"0": 7, "1": 3}


def test_median_falls_back_to_the_weighted_average_when_every_median_is_zero() -> None:
    results = [
        BackendResult("a", {"00": 1}),
        BackendResult("b", {"01": 1}),
        BackendResult("c", {"10": 1}, weight=2.0),
    ]
    agg = aggregate(results, Method.MEDIAN, shots=4)
    assert agg.counts == {"00": 1, "01": 1, "10": 2}
    assert agg.weights == {"a": 0.25, "b": 0.25, "c": 0.5}


# --- confidence --------------------------------------------------------------------------


def test_confidence_is_one_minus_the_mean_pairwise_hellinger_distance() -> None:
    # given H(p, q) = sqrt(1 - sqrt(0.5)), H(p, p) = 0, H(q, p) again
    p, q = {"0": 1.0}, {"0": 0.5, "1": 0.5}
    h = math.sqrt(1 - math.sqrt(0.5))
    assert confidence([p, q]) == pytest.approx(1 - h)
    assert confidence([p, q, p]) == pytest.approx(1 - 2 * h / 3)


def test_confidence_of_one_distribution_is_one() -> None:
    assert confidence([{"0": 0.2, "1": 0.8}]) == 1.0


def test_the_aggregate_reports_the_confidence_of_the_backends_distributions() -> None:
    results = [BackendResult("a", {"0": 10}), BackendResult("b", {"0": 5, "1": 5})]
    agg = aggregate(results, Method.WEIGHTED_AVERAGE)
    assert agg.confidence == confidence(agg.distributions.values())
    assert agg.confidence == pytest.approx(1 - math.sqrt(1 - math.sqrt(0.5)))


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([], "at least one result"),
        ([BackendResult("a", {"0": 1}), BackendResult("a", {"0": 1})], "results.1.backend"),
        ([BackendResult("", {"0": 1})], "results.0.backend"),
        ([BackendResult("a", {})], "must not be empty"),
        ([BackendResult("a", {"0": 0, "1": 0})], "at least 1 shot"),
        ([BackendResult("a", {"0": 3, "1": -1})], "integers >= 0"),
        ([BackendResult("a", {"0": 1.5})], "integers >= 0"),  # type: ignore[dict-item]
        ([BackendResult("a", {"0x3": 1})], "0s and 1s"),
        ([BackendResult("a", {"0  1": 1})], "0s and 1s"),
        ([BackendResult("a", {"00": 1}), BackendResult("b", {"000": 1})], "results.1.counts"),
        ([BackendResult("a", {"0 1": 1}), BackendResult("b", {"01": 1})], "registers of 1+1"),
        ([BackendResult("a", {"00": 1, "0": 1})], "results.0.counts"),
        ([BackendResult("a", {"0": 1}, weight=0.0)], "results.0.weight"),
        ([BackendResult("a", {"0": 1}, weight=-1.0)], "results.0.weight"),
        ([BackendResult("a", {"0": 1}, weight=math.inf)], "results.0.weight"),
        ([BackendResult("a", {"0": 1}, weight=math.nan)], "results.0.weight"),
    ],
)
def test_invalid_results_are_rejected_with_their_location(
    results: list[BackendResult], message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        aggregate(results, Method.WEIGHTED_AVERAGE)
    assert message in caught.value.detail
    assert caught.value.status == 422


@pytest.mark.parametrize("shots", [0, -5])
def test_shots_must_be_positive(shots: int) -> None:
    with pytest.raises(ValidationFailed, match="shots"):
        aggregate([BackendResult("a", {"0": 1})], Method.MEDIAN, shots=shots)


def test_more_than_the_maximum_number_of_results_is_a_limit() -> None:
    results = [BackendResult(f"b{i}", {"0": 1}) for i in range(MAX_RESULTS + 1)]
    with pytest.raises(LimitExceeded) as caught:
        aggregate(results, Method.WEIGHTED_AVERAGE)
    assert caught.value.error_code == "RESULT_LIMIT_EXCEEDED"


def test_more_than_the_maximum_number_of_bitstrings_is_a_limit() -> None:
    counts = {format(i, "017b"): 1 for i in range(MAX_BITSTRINGS + 1)}
    with pytest.raises(LimitExceeded) as caught:
        aggregate([BackendResult("a", counts)], Method.WEIGHTED_AVERAGE)
    assert caught.value.error_code == "BITSTRING_LIMIT_EXCEEDED"


def test_an_unknown_method_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Method("mode")


def test_every_method_is_described_once_and_says_what_an_ensemble_buys() -> None:
    assert [info.name for info in METHODS] == list(Method)
    for info in METHODS:
        assert info.summary and info.formula
        assert ENSEMBLE_NOTE in info.when_it_helps
    assert "does not beat the best backend" in ENSEMBLE_NOTE


# --- properties --------------------------------------------------------------------------

LAYOUTS = [(1,), (2,), (3,), (1, 2)]


def _keys(layout: tuple[int, ...]) -> list[str]:
    registers = [["".join(bits) for bits in itertools.product("01", repeat=n)] for n in layout]
    return [" ".join(parts) for parts in itertools.product(*registers)]


@st.composite
def count_maps(draw: st.DrawFn, keys: list[str]) -> dict[str, int]:
    counts = draw(st.dictionaries(st.sampled_from(keys), st.integers(0, 200), min_size=1))
    if sum(counts.values()) == 0:
        counts[next(iter(counts))] = 1
    return counts


@st.composite
def result_lists(draw: st.DrawFn, max_size: int = 5) -> list[BackendResult]:
    keys = _keys(draw(st.sampled_from(LAYOUTS)))
    names = draw(
        st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=max_size).map(
            lambda xs: list(dict.fromkeys(xs))
        )
    )
    weights = st.none() | st.floats(0.01, 1.0)
    return [BackendResult(n, draw(count_maps(keys)), draw(weights)) for n in names]


@FAST
@given(
    results=result_lists(),
    method=st.sampled_from(Method),
    shots=st.none() | st.integers(1, 10_000),
)
def test_aggregated_counts_sum_to_the_requested_shots(
    results: list[BackendResult], method: Method, shots: int | None
) -> None:
    agg = aggregate(results, method, shots=shots)
    expected = max(sum(r.counts.values()) for r in results) if shots is None else shots
    assert sum(agg.counts.values()) == expected
    assert all(count > 0 for count in agg.counts.values())
    assert math.fsum(agg.weights.values()) == pytest.approx(1.0)


@FAST
@given(
    data=st.data(),
    copies=st.integers(1, 5),
    method=st.sampled_from([Method.WEIGHTED_AVERAGE, Method.CONFIDENCE_WEIGHTED, Method.MEDIAN]),
)
def test_identical_inputs_give_confidence_one_and_their_own_distribution(
    data: st.DataObject, copies: int, method: Method
) -> None:
    # given the same counts from several backends, whatever their weights
    counts = data.draw(count_maps(_keys(data.draw(st.sampled_from(LAYOUTS)))))
    weights = data.draw(st.lists(st.floats(0.01, 1.0), min_size=copies, max_size=copies))
    results = [BackendResult(f"b{i}", counts, w) for i, w in enumerate(weights)]
    # when
    agg = aggregate(results, method)
    # then
    assert agg.confidence == pytest.approx(1.0, abs=1e-9)
    for key in counts.keys() | agg.counts.keys():
        assert abs(agg.counts.get(key, 0) - counts.get(key, 0)) <= 1


@FAST
@given(data=st.data(), copies=st.integers(1, 5))
def test_majority_vote_of_identical_inputs_keeps_what_reaches_the_uniform_level(
    data: st.DataObject, copies: int
) -> None:
    layout = data.draw(st.sampled_from(LAYOUTS))
    counts = data.draw(count_maps(_keys(layout)))
    results = [BackendResult(f"b{i}", counts) for i in range(copies)]
    agg = aggregate(results, Method.MAJORITY_VOTE)
    shots = sum(counts.values())
    kept = {key for key, count in counts.items() if count * 2 ** sum(layout) >= shots}
    assert agg.confidence == 1.0
    assert set(agg.counts) <= kept
    assert sum(agg.counts.values()) == shots


@FAST
@given(data=st.data(), method=st.sampled_from(Method), shots=st.none() | st.integers(1, 5000))
def test_the_order_of_the_backends_does_not_change_the_aggregate(
    data: st.DataObject, method: Method, shots: int | None
) -> None:
    results = data.draw(result_lists())
    shuffled = data.draw(st.permutations(results))
    assert aggregate(shuffled, method, shots=shots) == aggregate(results, method, shots=shots)


@FAST
@given(results=result_lists(max_size=6))
def test_confidence_is_between_zero_and_one(results: list[BackendResult]) -> None:
    agg = aggregate(results, Method.WEIGHTED_AVERAGE)
    assert 0.0 <= agg.confidence <= 1.0


@FAST
@given(data=st.data())
def test_confidence_of_two_disjoint_distributions_is_zero(data: st.DataObject) -> None:
    keys = _keys(data.draw(st.sampled_from(LAYOUTS[1:])))
    split = data.draw(st.integers(1, len(keys) - 1))
    first = data.draw(
        st.dictionaries(st.sampled_from(keys[:split]), st.integers(1, 99), min_size=1)
    )
    second = data.draw(
        st.dictionaries(st.sampled_from(keys[split:]), st.integers(1, 99), min_size=1)
    )
    agg = aggregate([BackendResult("a", first), BackendResult("b", second)], Method.MEDIAN)
    assert agg.confidence == 0.0
