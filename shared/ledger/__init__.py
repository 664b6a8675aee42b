"""The ledger: one hash-chained row per charged job, chargeback, budgets, evidence bundles."""
