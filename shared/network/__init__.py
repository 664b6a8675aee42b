"""The network API: backend catalog, routing, result aggregation and estimates (priced by
`shared.pricing`)."""
