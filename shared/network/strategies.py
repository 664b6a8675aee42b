"""Routing strategies: pure functions from estimates to the backend(s) to run on.

Only usable backends (online, and the circuit fits) are chosen. Ties break by backend id, so a
choice never depends on the order the catalog lists backends in.

- `fastest`: the lowest estimated wait plus run time (as the run happens now: emulated or in
  the cloud).
- `best_fidelity`: the highest estimated success probability of this circuit on the backend,
  from its calibration after layout (`emulation.on_device`); then the fastest.
- `cost_optimized`: the lowest cost of this run, then the lowest cost of the real device (so
  that, emulated, it picks the backend that would be cheapest in the cloud), then the fastest.
  Credit-priced (HQC) backends rank after those priced in USD: credits are not converted.
- `round_robin`: the usable backends in id order, taking turns per user (`turn` is the user's
  persistent counter).
- `ordered`: every usable backend in the order given; the job falls over to the next on failure.
- `all`: every usable backend at once (fan-out).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from shared.errors import ApiError, CircuitDoesNotFit, ServiceUnavailable, parse_choice
from shared.network.estimates import BackendEstimate


class Strategy(StrEnum):
    FASTEST = "fastest"
    BEST_FIDELITY = "best_fidelity"
    ROUND_ROBIN = "round_robin"
    COST_OPTIMIZED = "cost_optimized"
    ORDERED = "ordered"
    ALL = "all"


class NoBackends(ServiceUnavailable):
    code = "NO_BACKENDS"


def parse(name: str) -> Strategy:
    """The strategy called `name`; 400 INVALID_STRATEGY for any other."""
    return parse_choice(
        Strategy, name, what="strategy", plural="strategies", code="INVALID_STRATEGY"
    )


def choose(
    strategy: Strategy, estimates: Sequence[BackendEstimate], *, turn: int = 0
) -> list[BackendEstimate]:
    """The backends `strategy` runs on, from `estimates` (in the order the caller gave).

    Raises `NoBackends` (503) when no backend is online and `CircuitDoesNotFit` (400, with
    each backend's reason) when some are online but the circuit fits none."""
    online = [e for e in estimates if e.online]
    if not online:
        raise NoBackends("No backend is online to run this circuit", retry_after=60)
    usable = [e for e in online if e.fits]
    if not usable:
        reasons = "; ".join(f"{e.backend.id}: {e.reasons[0]}" for e in online if e.reasons)
        raise CircuitDoesNotFit(f"The circuit fits no online backend ({reasons})"[:1000])
    if strategy is Strategy.ALL or strategy is Strategy.ORDERED:
        return usable
    if strategy is Strategy.ROUND_ROBIN:
        ring = sorted(usable, key=lambda e: e.backend.id)
        return [ring[turn % len(ring)]]
    return [min(usable, key=_RANKS[strategy])]


def _time(e: BackendEstimate) -> float:
    return e.wait_s + (e.run_s if e.run_s is not None else float("inf"))


_RANKS = {
    Strategy.FASTEST: lambda e: (_time(e), e.backend.id),
    Strategy.BEST_FIDELITY: lambda e: (-(e.fidelity or 0.0), _time(e), e.backend.id),
    Strategy.COST_OPTIMIZED: lambda e: (
        e.cost_usd(),
        e.cost_usd(device=True),
        _time(e),
        e.backend.id,
    ),
}


def every_choice(estimates: Sequence[BackendEstimate], *, turn: int = 0) -> dict[str, list[str]]:
    """What each strategy would choose (an empty list where nothing fits)."""
    chosen: dict[str, list[str]] = {}
    for strategy in Strategy:
        try:
            chosen[strategy.value] = [e.backend.id for e in choose(strategy, estimates, turn=turn)]
        except ApiError:
            chosen[strategy.value] = []
    return chosen
