"""The tier table: the one place each tier's limits and price are written. `GET /pricing`
publishes it and every limit is enforced from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class TierName(StrEnum):
    FREE = "free"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class Tier:
    name: TierName
    daily_jobs: int | None  # None: unlimited
    max_qubits: int
    max_shots: int
    requests_per_minute: int  # per API key
    price_eur: int | None  # per month; None: custom (set by contract)


TIERS: dict[TierName, Tier] = {
    TierName.FREE: Tier(
        TierName.FREE,
        daily_jobs=10,
        max_qubits=20,
        max_shots=1024,
        requests_per_minute=60,
        price_eur=0,
    ),
    TierName.PROFESSIONAL: Tier(
        TierName.PROFESSIONAL,
        daily_jobs=1000,
        max_qubits=50,
        max_shots=10_000,
        requests_per_minute=300,
        price_eur=99,
    ),
    TierName.ENTERPRISE: Tier(
        TierName.ENTERPRISE,
        daily_jobs=None,
        max_qubits=127,
        max_shots=100_000,
        requests_per_minute=1000,
        price_eur=None,
    ),
}


UNLIMITED: Final = "unlimited"  # how the API writes a limit of None
CUSTOM: Final = "custom"  # how the API writes a price of None


def tier(name: str) -> Tier:
    """The tier called `name`; raises KeyError for an unknown name."""
    return TIERS[TierName(name)]
