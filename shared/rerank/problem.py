"""The selection objective and the ranking of a chosen subset.

For relevances r_i in [0, 1], similarities s_ij in [0, 1] and a diversity weight d in [0, 1],
choose exactly k candidates S maximising

    f(S) = sum_{i in S} r_i  -  d * sum_{i<j in S} s_ij

total relevance minus d times the similarity of every chosen pair. With d = 0 this is plain
top-k by relevance; with d = 1 adding an exact duplicate of a chosen candidate (s = 1) never
raises f. As a QUBO over x in {0,1}^n with sum(x) = k: f(x) = r.x - d * sum_{i<j} s_ij x_i x_j.

Each chosen item's *score* is its relevance minus d times half its summed similarity to the
other chosen items (each pair's cost is shared by its two items), so the scores add up to f.
The chosen items are ranked by score, highest first (ties: higher relevance, then the earlier
candidate), and each reported score is that value clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]
Subsets = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Scores:
    """What a scorer says of one query and its candidates."""

    relevance: Vector  # (n,), each in [0, 1]
    similarity: Matrix  # (n, n), symmetric, each in [0, 1] (the diagonal is not used)


@dataclass(frozen=True)
class Ranked:
    index: int  # the candidate's position in the request
    score: float  # in [0, 1]
    rank: int  # 1 first


@dataclass(frozen=True)
class Problem:
    relevance: Vector
    similarity: Matrix  # with a zero diagonal
    k: int
    diversity: float

    @classmethod
    def build(cls, scores: Scores, k: int, diversity: float) -> Problem:
        n = len(scores.relevance)
        if not 1 <= k <= n:
            raise ValueError(f"k must be between 1 and {n}")
        similarity = np.clip(np.asarray(scores.similarity, dtype=np.float64), 0.0, 1.0)
        similarity = (similarity + similarity.T) / 2.0
        np.fill_diagonal(similarity, 0.0)
        relevance = np.clip(np.asarray(scores.relevance, dtype=np.float64), 0.0, 1.0)
        return cls(relevance, similarity, k, float(diversity))

    @property
    def n(self) -> int:
        return len(self.relevance)

    @property
    def pair_weight(self) -> float:
        """The QUBO's weight on each chosen pair's similarity: d."""
        return self.diversity

    def value(self, subset: Sequence[int]) -> float:
        """f(S) for one subset of size k."""
        return float(self.values(np.asarray([list(subset)], dtype=np.int64))[0])

    def values(self, subsets: Subsets) -> Vector:
        """f(S) for each row of an (m, k) array of candidate indices."""
        total = self.relevance[subsets].sum(axis=1)
        if self.k > 1 and self.diversity > 0:
            pairs = self.similarity[subsets[:, :, None], subsets[:, None, :]].sum(axis=(1, 2))
            total = total - self.pair_weight * pairs / 2.0
        return np.asarray(total, dtype=np.float64)

    def item_scores(self, subset: Sequence[int]) -> Vector:
        """Each chosen item's relevance minus d times half its summed similarity to the others
        (the scores add up to f)."""
        chosen = np.asarray(list(subset), dtype=np.int64)
        shared = self.similarity[np.ix_(chosen, chosen)].sum(axis=1) / 2.0
        return np.asarray(self.relevance[chosen] - self.diversity * shared, dtype=np.float64)

    def restrict(self, indices: Sequence[int]) -> Problem:
        """The same problem over the candidates `indices` (in that order)."""
        keep = np.asarray(list(indices), dtype=np.int64)
        return Problem(
            self.relevance[keep], self.similarity[np.ix_(keep, keep)], self.k, self.diversity
        )

    def rank(self, subset: Sequence[int]) -> list[Ranked]:
        """The chosen items, best score first (module docstring)."""
        chosen = list(subset)
        scores = self.item_scores(chosen)
        order = sorted(
            range(len(chosen)),
            key=lambda i: (-scores[i], -self.relevance[chosen[i]], chosen[i]),
        )
        return [
            Ranked(
                index=int(chosen[i]),
                score=round(float(min(max(scores[i], 0.0), 1.0)), 6),
                rank=position + 1,
            )
            for position, i in enumerate(order)
        ]
