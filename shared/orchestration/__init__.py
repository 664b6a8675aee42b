"""Durable orchestrations: deterministic orchestrators, and the client that starts them."""
