"""Response models of the supplier listings (the OpenAPI spec is generated from these).

A provider's and its targets' prices are filled in by `shared.pricing.listing`: the catalog
carries none.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.suppliers.base import Target


class SupplierSummary(BaseModel):
    id: str = Field(examples=["ibm_quantum"])
    name: str = Field(examples=["IBM Quantum"])
    status: str = Field(description="`active`, or `unavailable` when configured credentials fail")
    reason: str | None = Field(None, description="Why the supplier is unavailable")
    providers_count: int
    mode: str = Field(
        description="`cloud` when credentials are configured, `emulated` (local stand-ins) "
        "otherwise"
    )


class SupplierList(BaseModel):
    suppliers: list[SupplierSummary]


class TargetInfo(BaseModel):
    name: str = Field(examples=["ionq.qpu.aria-1"])
    kind: str = Field(description="qpu, simulator, emulator, syntax_checker or analog")
    gate_model: bool = Field(description="False for analog devices, which refuse circuits")
    num_qubits: int
    status: str = Field(description="`online`, or `retired` when the supplier no longer offers it")
    native_gates: list[str]
    connectivity: str = Field(
        description="`all-to-all`, the number of coupled pairs, or the layout's name"
    )
    mid_circuit_measurement: bool
    description: str
    emulation: str = Field(description="What runs this target when the supplier is emulated")
    cost_model: dict[str, Any] | None = Field(
        description="The target's price-book entry (null: not priced)"
    )


class ProviderInfo(BaseModel):
    id: str = Field(examples=["ionq"])
    name: str = Field(examples=["IonQ"])
    num_qubits: int = Field(description="The widest of its targets", examples=[29])
    targets: list[str] = Field(
        description="Its targets' names, each one a `backend` for "
        "`POST /api/v1/{supplier}/execute`",
        examples=[["ionq.simulator", "ionq.qpu.aria-1", "ionq.qpu.forte-1"]],
    )
    description: str = Field(examples=["Trapped-ion quantum computer"])
    cost_model: str = Field(
        description="How its paid targets are billed: `per_aqt` (IonQ's gate-shot formula), "
        "`hqc_credits` (Quantinuum credits), `per_task_per_shot`, `per_minute` (of QPU or "
        "simulator time), or `free` when none of its targets costs anything",
        examples=["per_aqt", "hqc_credits"],
    )
    target_details: list[TargetInfo] = Field(
        description="Each target in `targets`' order: qubits, gates, kind, status, price"
    )


class ProviderList(BaseModel):
    providers: list[ProviderInfo]


class IBMBackend(BaseModel):
    backend_name: str = Field(examples=["ibm_brisbane"])
    backend_type: str = Field(examples=["qpu"])
    num_qubits: int
    status: str = Field(examples=["online"])
    processor_family: str = Field(examples=["eagle"])
    mode: str


class IBMBackendList(BaseModel):
    backends: list[IBMBackend]


class BraketDevice(BaseModel):
    name: str = Field(examples=["sv1"])
    type: str = Field(description="QPU or SIMULATOR, as Braket names them")
    num_qubits: int
    status: str = Field(description="ONLINE or RETIRED, as Braket names them")
    provider: str
    arn: str
    mode: str


class BraketDeviceList(BaseModel):
    devices: list[BraketDevice]


def connectivity_of(target: Target) -> str:
    if target.coupling is not None:
        return f"{len(target.coupling)} coupled pairs"
    return target.topology or "all-to-all"


def target_status(target: Target) -> str:
    return "online" if target.available else "retired"


def emulation_of(target: Target) -> str:
    kind = target.kind.value
    if kind == "simulator":
        return "ideal simulator" + (
            f" (at most {target.emulation_max_qubits} qubits)"
            if target.emulation_max_qubits
            else ""
        )
    if kind == "syntax_checker":
        return "validates against the device, returns all-zero counts"
    if kind == "analog":
        return "none: not gate-model"
    return f"Aer with the device's gates, connectivity and error rates ({target.calibration})"
