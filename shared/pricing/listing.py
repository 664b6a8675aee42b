"""A supplier's providers and targets with their prices (`GET /api/v1/{supplier}/providers`).

The catalog (`shared.suppliers.catalog`) carries no prices, so the listing that shows them is
put together here: each target with its price book entry (`cost_model`), each provider with the
reference's name for how its paid targets bill.
"""

from __future__ import annotations

from shared.pricing.book import CostModel, cost_model
from shared.suppliers.base import Provider, Target
from shared.suppliers.catalog import supplier
from shared.suppliers.schemas import (
    ProviderInfo,
    ProviderList,
    TargetInfo,
    connectivity_of,
    emulation_of,
    target_status,
)


def providers(supplier_id: str) -> ProviderList:
    """`supplier_id`'s providers and their targets, priced. `NotFound` SUPPLIER_NOT_FOUND for
    an unknown supplier."""
    info = supplier(supplier_id)
    return ProviderList(providers=[provider_info(p) for p in info.providers])


def provider_info(provider: Provider) -> ProviderInfo:
    costs = [cost_model(t) for t in provider.targets]
    paid = [c for c in costs if c and not c.free]
    return ProviderInfo(
        id=provider.id,
        name=provider.name,
        num_qubits=provider.num_qubits,
        targets=[t.name for t in provider.targets],
        description=provider.description,
        cost_model=cost_model_of(paid[0]) if paid else "free",
        target_details=[target_info(t) for t in provider.targets],
    )


def target_info(target: Target) -> TargetInfo:
    cost = cost_model(target)
    return TargetInfo(
        name=target.name,
        kind=target.kind.value,
        gate_model=target.gate_model,
        num_qubits=target.num_qubits,
        status=target_status(target),
        native_gates=list(target.native_gates),
        connectivity=connectivity_of(target),
        mid_circuit_measurement=target.mid_circuit_measurement,
        description=target.description,
        emulation=emulation_of(target),
        cost_model=cost.to_dict() if cost else None,
    )


def cost_model_of(cost: CostModel) -> str:
    """The reference's name for how `cost` bills (`ProviderInfo.cost_model`)."""
    if cost.unit == "HQC":
        return "hqc_credits"
    if cost.per_1q_gate_shot or cost.per_2q_gate_shot:
        return "per_aqt"
    if cost.per_minute:
        return "per_minute"
    return "per_task_per_shot"
