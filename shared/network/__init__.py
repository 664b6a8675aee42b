"""The network API: backend catalog, routing, result aggregation, price book and estimates."""
