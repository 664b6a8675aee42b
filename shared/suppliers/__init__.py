"""Suppliers: the simulators and quantum clouds a circuit runs on, each behind its own module so
that a function imports only the SDK it uses."""
