"""Circuits: OpenQASM limits and parsing (untrusted input), before any simulator sees them."""

from shared.circuits.limits import CircuitLimits
from shared.circuits.parser import (
    ParsedCircuit,
    Source,
    check_qasm3_tokens,
    check_source,
    parse_circuit,
    parse_source,
)

__all__ = [
    "CircuitLimits",
    "ParsedCircuit",
    "Source",
    "check_qasm3_tokens",
    "check_source",
    "parse_circuit",
    "parse_source",
]
