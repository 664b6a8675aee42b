"""Aggregation: merge the counts several backends measured for one circuit into one result.

Notation: backend b measured counts c_b(x) over N_b = sum_x c_b(x) shots, so its distribution
is p_b(x) = c_b(x) / N_b (a bitstring it did not report has p_b(x) = 0); w_b is its weight (the
caller passes the backend's estimated fidelity for the circuit, or the user's explicit weight;
none means 1). x ranges over the union of all backends' bitstrings, n is their width in bits.

- `weighted_average`: p(x) = sum_b w_b p_b(x) / sum_b w_b.
- `confidence_weighted`: the weighted average with inverse-variance weights v_b = N_b f_b^2,
  f_b = w_b read as a fidelity. Why: if a fraction 1 - f_b of a backend's shots is noise, its
  frequency is p_hat = f_b p + (1 - f_b) u, and the estimate of p recovered from it,
  (p_hat - (1 - f_b) u) / f_b, has variance p (1 - p) / (N_b f_b^2). The factor p (1 - p) is the
  same for every backend at a given x and cancels when the weights are normalised, so there is
  one weight per backend (global, not per bitstring). Equal shots and fidelities give equal
  weights; only ratios of the f_b matter.
- `majority_vote` (plurality sharpening): backend b *supports* x when p_b(x) >= 1 / 2^n (at or
  above the uniform level, i.e. more than pure noise would give it). It keeps exactly the
  bitstrings supported by backends holding a strict majority of the weight
  (sum_{b supports x} w_b > sum_b w_b / 2) and drops every other bitstring; the kept ones get
  their weighted-average probability, renormalised. If nothing is kept, the result is
  `weighted_average`.
- `median`: m(x) = median_b p_b(x) (missing = 0; the mean of the two middle values for an even
  number of backends), p(x) = m(x) / sum_x m(x). Weights are ignored. If every m(x) is 0, the
  result is `weighted_average`.

Counts are p(x) scaled to `shots` with largest-remainder rounding, so they sum exactly to
`shots`. The result never depends on the order of the results: backends are processed sorted
by name, sums are exact (`math.fsum`) and rounding ties go to the smaller bitstring.

`confidence` is the agreement between the backends' distributions: one minus the mean pairwise
Hellinger distance, H(p, q) = sqrt(1 - sum_x sqrt(p(x) q(x))); 1.0 for one backend or identical
distributions, 0.0 when every pair is disjoint.

An ensemble buys stability (one bad backend moves the result less) and throughput (shots run in
parallel on several backends); it does not beat the best backend, unless weighting by measured
fidelity gives that backend most of the weight.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import combinations

from shared.circuits.bitorder import probabilities_to_counts
from shared.errors import LimitExceeded, ValidationFailed, parse_choice

MAX_RESULTS = 64
MAX_BITSTRINGS = 2**16  # distinct bitstrings in one result

_KEY = re.compile(r"[01]+(?: [01]+)*")
_SNAP = 1e-12  # a confidence this close to 0 or 1 is float error


class Method(StrEnum):
    WEIGHTED_AVERAGE = "weighted_average"
    MAJORITY_VOTE = "majority_vote"
    CONFIDENCE_WEIGHTED = "confidence_weighted"
    MEDIAN = "median"


def parse(name: str) -> Method:
    """The method called `name`; 400 INVALID_AGGREGATION_METHOD for any other."""
    return parse_choice(
        Method, name, what="aggregation method", plural="methods", code="INVALID_AGGREGATION_METHOD"
    )


@dataclass(frozen=True)
class BackendResult:
    """One backend's counts for the circuit. `weight`: its estimated fidelity for the circuit or
    the user's explicit weight (finite, > 0); None means 1. Its shots are the sum of `counts`."""

    backend: str
    counts: Mapping[str, int]
    weight: float | None = None


@dataclass(frozen=True)
class Aggregate:
    """The merged result.

    `counts` sum to the requested shots (bitstrings with 0 left out); `confidence` is
    `confidence(distributions.values())`; `weights` are the weights the method applied,
    normalised to sum 1, by backend (equal for `median`); `distributions` are each backend's
    own normalised distribution (what a failed aggregation reports)."""

    counts: dict[str, int]
    confidence: float
    weights: dict[str, float]
    distributions: dict[str, dict[str, float]]


@dataclass(frozen=True)
class MethodInfo:
    """What `GET /aggregate/methods` lists for one method."""

    name: Method
    summary: str
    formula: str
    when_it_helps: str


ENSEMBLE_NOTE = (
    "An ensemble buys stability and throughput; it does not beat the best backend unless "
    "weighting by measured fidelity gives that backend most of the weight."
)

METHODS: tuple[MethodInfo, ...] = (
    MethodInfo(
        name=Method.WEIGHTED_AVERAGE,
        summary="Average of the backends' distributions, each weighted by its estimated "
        "fidelity for the circuit (or the weight you give it).",
        formula="p(x) = sum_b w_b p_b(x) / sum_b w_b",
        when_it_helps="Backends of known, different quality: measured fidelities shift the "
        "result towards the better ones. " + ENSEMBLE_NOTE,
    ),
    MethodInfo(
        name=Method.MAJORITY_VOTE,
        summary="Plurality sharpening: keeps only the bitstrings that backends holding a "
        "strict majority of the weight each measured at or above the uniform level 1/2^n, "
        "drops every other bitstring, and renormalises their weighted average. If nothing is "
        "kept, it is the weighted average.",
        formula="keep x iff sum_{b: p_b(x) >= 2^-n} w_b > (sum_b w_b) / 2; "
        "p(x) = sum_b w_b p_b(x) / sum_{kept y} sum_b w_b p_b(y) for kept x, else 0",
        when_it_helps="Circuits with a few expected outcomes (search, Bell/GHZ states): it "
        "removes the noise tail that backends do not agree on. It distorts circuits whose "
        "true distribution is broad. " + ENSEMBLE_NOTE,
    ),
    MethodInfo(
        name=Method.CONFIDENCE_WEIGHTED,
        summary="Inverse-variance weighted average: one weight per backend from its shot "
        "count and its fidelity (the weight you pass). Equal shots and fidelities give equal "
        "weights.",
        formula="p(x) = sum_b v_b p_b(x) / sum_b v_b, v_b = N_b f_b^2 (the estimate of p(x) "
        "from N_b shots of which a fraction 1 - f_b is noise has variance "
        "p(x)(1 - p(x)) / (N_b f_b^2))",
        when_it_helps="Backends that ran different numbers of shots: a backend with more "
        "shots, or less noise, counts for more. " + ENSEMBLE_NOTE,
    ),
    MethodInfo(
        name=Method.MEDIAN,
        summary="Each bitstring's median probability across backends (a missing bitstring "
        "counts as 0), renormalised; weights are ignored. If every median is 0, it is the "
        "weighted average.",
        formula="m(x) = median_b p_b(x), p(x) = m(x) / sum_y m(y)",
        when_it_helps="Three or more backends, one of which may be badly off: a single outlier "
        "cannot move the median. " + ENSEMBLE_NOTE,
    ),
)


def aggregate(
    results: Sequence[BackendResult], method: Method, *, shots: int | None = None
) -> Aggregate:
    """Merge `results` by `method` into counts summing to `shots`.

    `shots` defaults to the largest shot count among the results (their common shot count
    when they all ran the same number); the API passes the requested shots. The formulas are
    in the module docstring. The result does not depend on the order of `results`.

    Raises `ValidationFailed` (422) for no results, a backend named twice or unnamed, empty
    counts or counts summing to 0, a negative or non-integer count, a bitstring that is not
    0s and 1s in space-separated registers, bitstrings whose registers and widths differ (all
    results must use one key format, e.g. "0 11" everywhere), a weight that is not finite and
    > 0, or `shots` < 1; `LimitExceeded` (400) for more than `MAX_RESULTS` results or more
    than `MAX_BITSTRINGS` bitstrings in one result.
    """
    method = Method(method)
    _validate(results, shots)
    ordered = sorted(results, key=lambda r: r.backend)
    distributions = {r.backend: _distribution(r.counts) for r in ordered}
    total_shots = {r.backend: sum(r.counts.values()) for r in ordered}
    given = {r.backend: 1.0 if r.weight is None else float(r.weight) for r in ordered}
    # Only ratios matter: scaling by the largest keeps sums and squares of huge weights finite.
    largest = max(given.values())
    weights = {b: w / largest for b, w in given.items()}

    applied = weights
    if method is Method.CONFIDENCE_WEIGHTED:
        applied = {b: total_shots[b] * weights[b] ** 2 for b in weights}
        merged = _weighted_average(distributions, applied)
    elif method is Method.MAJORITY_VOTE:
        merged = _majority_vote(ordered, weights, distributions)
    elif method is Method.MEDIAN:
        median = _median(distributions)
        if median is None:
            merged = _weighted_average(distributions, weights)
        else:
            merged, applied = median, dict.fromkeys(weights, 1.0)
    else:
        merged = _weighted_average(distributions, weights)

    target = max(total_shots.values()) if shots is None else shots
    positive = {key: p for key, p in merged.items() if p > 0}
    return Aggregate(
        counts=probabilities_to_counts(positive, target),
        confidence=confidence(distributions.values()),
        weights=_normalised(applied),
        distributions=distributions,
    )


def confidence(distributions: Iterable[Mapping[str, float]]) -> float:
    """One minus the mean pairwise Hellinger distance of `distributions` (each a bitstring ->
    probability map summing to 1): 1.0 for one distribution or identical ones, 0.0 when every
    pair is disjoint, always in [0, 1], independent of the order.

    H(p, q)^2 = 1 - sum_x sqrt(p(x) q(x)) is computed as 1/2 sum_x (sqrt p(x) - sqrt q(x))^2
    (equal for normalised p and q), which is exactly 0 for identical distributions."""
    roots = [{key: math.sqrt(p) for key, p in dist.items()} for dist in distributions]
    if len(roots) < 2:
        return 1.0
    distances = [_hellinger(a, b) for a, b in combinations(roots, 2)]
    value = 1.0 - math.fsum(distances) / len(distances)
    if value < _SNAP:
        return 0.0
    if value > 1.0 - _SNAP:
        return 1.0
    return value


# --- methods -------------------------------------------------------------------------------


def _weighted_average(
    distributions: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]
) -> dict[str, float]:
    terms: dict[str, list[float]] = {}
    for backend, dist in distributions.items():
        for key, p in dist.items():
            terms.setdefault(key, []).append(weights[backend] * p)
    total = math.fsum(weights.values())
    return {key: math.fsum(values) / total for key, values in sorted(terms.items())}


def _majority_vote(
    ordered: Sequence[BackendResult],
    weights: Mapping[str, float],
    distributions: Mapping[str, Mapping[str, float]],
) -> dict[str, float]:
    average = _weighted_average(distributions, weights)
    level = 2 ** len(next(iter(average)).replace(" ", ""))
    votes: dict[str, list[float]] = {}
    for result in ordered:
        shots = sum(result.counts.values())
        for key, count in result.counts.items():
            if count * level >= shots:  # p_b(x) >= 1 / 2^n, in integers
                votes.setdefault(key, []).append(weights[result.backend])
    total = math.fsum(weights.values())
    kept = {key: average[key] for key, w in votes.items() if 2 * math.fsum(w) > total}
    mass = math.fsum(kept.values())
    if mass <= 0:
        return average
    return {key: p / mass for key, p in sorted(kept.items())}


def _median(distributions: Mapping[str, Mapping[str, float]]) -> dict[str, float] | None:
    """The renormalised medians, or None when every median is 0."""
    values: dict[str, list[float]] = {}
    for dist in distributions.values():
        for key, p in dist.items():
            values.setdefault(key, []).append(p)
    missing = len(distributions)
    medians = {
        key: statistics.median(sorted(ps + [0.0] * (missing - len(ps))))
        for key, ps in sorted(values.items())
    }
    mass = math.fsum(medians.values())
    if mass <= 0:
        return None
    return {key: m / mass for key, m in medians.items()}


# --- helpers -------------------------------------------------------------------------------


def _distribution(counts: Mapping[str, int]) -> dict[str, float]:
    shots = sum(counts.values())
    return {key: count / shots for key, count in sorted(counts.items()) if count}


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = math.fsum(weights.values())
    return {b: w / total for b, w in weights.items()}


def _hellinger(root_p: Mapping[str, float], root_q: Mapping[str, float]) -> float:
    """H(p, q) from the square roots of p and q."""
    keys = root_p.keys() | root_q.keys()
    squared = 0.5 * math.fsum((root_p.get(k, 0.0) - root_q.get(k, 0.0)) ** 2 for k in keys)
    return math.sqrt(min(1.0, squared))


def _layout(key: str) -> tuple[int, ...]:
    return tuple(len(register) for register in key.split(" "))


def _describe(layout: tuple[int, ...]) -> str:
    bits = sum(layout)
    if len(layout) == 1:
        return f"{bits} bits"
    return f"{bits} bits in registers of {'+'.join(str(n) for n in layout)}"


def _validate(results: Sequence[BackendResult], shots: int | None) -> None:
    if not results:
        raise ValidationFailed("results: at least one result is required")
    if len(results) > MAX_RESULTS:
        raise LimitExceeded(
            f"results: {len(results)} results; the limit is {MAX_RESULTS}",
            error_code="RESULT_LIMIT_EXCEEDED",
        )
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise ValidationFailed("shots: must be an integer of at least 1")
    seen: dict[str, int] = {}
    expected: tuple[int, ...] | None = None
    for i, result in enumerate(results):
        loc = f"results.{i}"
        if not isinstance(result.backend, str) or not result.backend:
            raise ValidationFailed(f"{loc}.backend: must be a non-empty string")
        if result.backend in seen:
            raise ValidationFailed(
                f"{loc}.backend: the same backend as results.{seen[result.backend]}; "
                "list each backend once"
            )
        seen[result.backend] = i
        _validate_weight(loc, result.weight)
        counts = result.counts
        if len(counts) > MAX_BITSTRINGS:
            raise LimitExceeded(
                f"{loc}.counts: {len(counts)} bitstrings; the limit is {MAX_BITSTRINGS}",
                error_code="BITSTRING_LIMIT_EXCEEDED",
            )
        if not counts:
            raise ValidationFailed(f"{loc}.counts: must not be empty")
        for key, count in counts.items():
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise ValidationFailed(
                    f"{loc}.counts: bitstrings must be 0s and 1s, registers separated by "
                    'one space (e.g. "0 11")'
                )
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValidationFailed(f"{loc}.counts: counts must be integers >= 0")
            layout = _layout(key)
            if expected is None:
                expected = layout
            elif layout != expected:
                raise ValidationFailed(
                    f"{loc}.counts: every bitstring must have the same registers and widths "
                    f"across all results; found {_describe(layout)} and {_describe(expected)}"
                )
        if sum(counts.values()) == 0:
            raise ValidationFailed(f"{loc}.counts: must add up to at least 1 shot")


def _validate_weight(loc: str, weight: float | None) -> None:
    if weight is None:
        return
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise ValidationFailed(f"{loc}.weight: must be a number")
    if not math.isfinite(weight) or weight <= 0:
        raise ValidationFailed(f"{loc}.weight: must be finite and greater than 0")
