"""Circuits: OpenQASM limits and parsing (untrusted input), before any simulator sees them."""

from shared.circuits.limits import CircuitLimits
from shared.circuits.parser import ParsedCircuit, parse_circuit

__all__ = ["CircuitLimits", "ParsedCircuit", "parse_circuit"]
