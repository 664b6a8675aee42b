"""Reranking: choose k candidates that are relevant to a query and not redundant with each other.

- `scoring`: relevance of each candidate and similarity between candidates (a `Scorer`).
- `problem`: the selection objective (a QUBO under a cardinality constraint) and the ranking.
- `classic`: the exact solver and the greedy-plus-local-search heuristic (the reference).
- `qaoa`: QAOA on Aer over a shortlist, Dicke-state start and XY mixer.
- `service`: the `/rerank` jobs.
"""
