"""The tier table: the one place each tier's limits are written."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


TIERS: dict[TierName, Tier] = {
    TierName.FREE: Tier(TierName.FREE, daily_jobs=10, max_qubits=20, max_shots=1024),
    TierName.PROFESSIONAL: Tier(
        TierName.PROFESSIONAL, daily_jobs=1000, max_qubits=50, max_shots=10_000
    ),
    TierName.ENTERPRISE: Tier(
        TierName.ENTERPRISE, daily_jobs=None, max_qubits=127, max_shots=100_000
    ),
}


def tier(name: str) -> Tier:
    """The tier called `name`; raises KeyError for an unknown name."""
    return TIERS[TierName(name)]
