"""Bounds on a circuit, checked before it costs anything (sizes in the source) and after parsing
(qubits, clbits, expanded operations, depth)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Limits


@dataclass(frozen=True)
class CircuitLimits:
    max_qasm_bytes: int
    max_qubits: int  # the caller's tier
    max_clbits: int
    max_operations: int  # counted through nested gate definitions
    max_depth: int

    @classmethod
    def from_limits(cls, limits: Limits, max_qubits: int) -> CircuitLimits:
        return cls(
            max_qasm_bytes=limits.max_qasm_bytes,
            max_qubits=max_qubits,
            max_clbits=limits.max_clbits,
            max_operations=limits.max_operations,
            max_depth=limits.max_depth,
        )
