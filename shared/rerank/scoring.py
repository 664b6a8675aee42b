"""Scorers: how relevant each candidate is to the query, and how similar candidates are.

A `Scorer` turns a query and its candidates into `Scores` (relevance in [0, 1] per candidate,
a symmetric similarity in [0, 1] per pair, diagonal 1). `build_scorer` picks one by settings.

`LexicalScorer` ("lexical") needs no model. Text is NFKC-normalised and case-folded, and its
words are the runs of `\\w` (letters, digits and underscore in any script).

- Word relevance, Okapi BM25 with k1 = 1.2 and b = 0.75, over the query's distinct words t:

      bm25(D) = sum_t idf(t) * tf(t, D) * (k1 + 1) / (tf(t, D) + k1 * (1 - b + b * |D| / avgdl))
      idf(t)  = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))     (never negative)

  with N, df, |D| and avgdl counted over the candidates. English function words ("how", "to")
  are left out of the query's words unless it has no others: among a few short candidates they
  are as rare as the topic's words and would count as much.
- Character n-grams, as scikit-learn's `char_wb`: each word padded with a space either side and
  cut into its 3-, 4- and 5-grams. A text's vector weighs each n-gram by a sublinear tf-idf,

      w(g, D) = (1 + log tf(g, D)) * (1 + log((1 + N) / (1 + df(g))))

  (df over the candidates; an n-gram of the query alone gets the largest idf), L2-normalised.
  `char(Q, D)` is the cosine of two such vectors; n-grams make "reranking" and "rerank" close.
- Relevance: when some query word occurs in some candidate,

      blend(D) = 0.6 * bm25(D) / max_D bm25  +  0.4 * char(Q, D)
      relevance(D) = blend(D) / max_D blend

  so the best candidate scores 1, exact words dominate, and a word's variants still count.
  When no query word occurs in any candidate, relevance is `char(Q, D)` alone, not rescaled:
  a query that nothing matches keeps low relevance rather than crowning a best guess.
- Similarity between two candidates: `char(D_i, D_j)`. A reworded sentence stays high and a
  sentence on another topic low, whatever words they share by chance.

`EmbeddingScorer` ("embeddings") asks an OpenAI-compatible `/embeddings` endpoint (Azure OpenAI
included) for one vector per text; relevance is the cosine of query and candidate clipped to
[0, 1] and divided by its maximum (all zero stays zero), similarity the clipped cosine. It
raises `ScorerUnavailable` (503: the job queue retries) when the endpoint cannot be reached,
times out or answers 408, 425, 429 or 5xx, and `ScorerRejected` (502: the job fails) when it
refuses the request otherwise or answers something that is not one vector per text. Messages
never carry the key, the URL or the endpoint's own error text (which may quote the key).
"""

from __future__ import annotations

import http.client
import json
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from shared.config import RerankSettings
from shared.errors import ApiError, ServiceUnavailable
from shared.rerank.problem import Matrix, Scores, Vector


class Scorer(Protocol):
    name: str

    def score(self, query: str, candidates: Sequence[str]) -> Scores:
        """Relevance of each candidate to `query`, and the similarity of each pair."""
        ...


class ScorerUnavailable(ServiceUnavailable):
    """The scorer's endpoint could not answer now; the job may be retried."""

    code = "SCORER_UNAVAILABLE"


class ScorerRejected(ApiError):
    """The scorer's endpoint refused the request or answered nonsense; retrying will not help."""

    status = 502
    code = "SCORER_ERROR"


def build_scorer(settings: RerankSettings) -> Scorer:
    """The scorer `settings.scorer` names. Raises `ValueError` for an unknown one."""
    if settings.scorer == "lexical":
        return LexicalScorer()
    if settings.scorer == "embeddings":
        if not settings.embeddings_url:
            raise ValueError("the embeddings scorer needs embeddings_url")
        return EmbeddingScorer(
            url=settings.embeddings_url,
            key=settings.embeddings_key,
            model=settings.embeddings_model,
            timeout_seconds=settings.embeddings_timeout_seconds,
        )
    raise ValueError(f"unknown scorer {settings.scorer!r}")


# --- lexical -------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_K1 = 1.2
_B = 0.75
_BM25_SHARE = 0.6  # of the blend; the character cosine has the rest
_NGRAM_SIZES = range(3, 6)
# Left out of the query's BM25 words (module docstring); the character n-grams keep them.
_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


class LexicalScorer:
    """BM25 and character n-gram tf-idf (module docstring); numpy and scipy only."""

    name = "lexical"

    def score(self, query: str, candidates: Sequence[str]) -> Scores:
        n = len(candidates)
        # Row 0 is the query, rows 1..n the candidates: one vocabulary for all.
        word_counts, words = _counts([_words(text) for text in [query, *candidates]])
        grams = _char_gram_vectors(word_counts, words, n)
        cosine = np.clip((grams @ grams.T).toarray(), 0.0, 1.0)
        char_relevance = cosine[0, 1:]
        similarity = cosine[1:, 1:]
        similarity = (similarity + similarity.T) / 2.0  # exact symmetry despite rounding
        np.fill_diagonal(similarity, 1.0)

        bm25 = _bm25(word_counts, words, n)
        if bm25.max(initial=0.0) > 0.0:
            blend = _BM25_SHARE * bm25 / bm25.max() + (1.0 - _BM25_SHARE) * char_relevance
            relevance = blend / blend.max()
        else:
            relevance = char_relevance
        return Scores(np.asarray(relevance, dtype=np.float64), similarity)


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _counts(rows: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """How often each distinct item occurs in each row, and the items in column order."""
    column: dict[str, int] = {}  # first seen first: deterministic
    columns = [column.setdefault(item, len(column)) for item in chain.from_iterable(rows)]
    row_ids = np.repeat(np.arange(len(rows)), [len(row) for row in rows])
    counts = sp.csr_matrix(
        (np.ones(len(columns)), (row_ids, columns)), shape=(len(rows), len(column))
    )
    counts.sum_duplicates()
    return counts, list(column)


def _char_gram_vectors(word_counts: sp.csr_matrix, words: list[str], n: int) -> sp.csr_matrix:
    """Each row's L2-normalised sublinear tf-idf over character n-grams (idf over rows 1..n)."""
    # Spell each distinct word once; (texts x words) @ (words x n-grams) counts the n-grams
    # (a product has one entry per row and column, duplicates summed).
    spelling = _spelling(words)
    counts = sp.csr_matrix(word_counts @ spelling)
    candidates = counts.indices[counts.indptr[1] :]
    document_frequency = np.bincount(candidates, minlength=spelling.shape[1])
    idf = 1.0 + np.log((1.0 + n) / (1.0 + document_frequency))
    counts.data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    _l2_normalise(counts)
    return counts


def _spelling(words: list[str]) -> sp.csr_matrix:
    """(words x character n-grams) counts: `char_wb`'s n-grams of each word, padded with a space
    either side (" ab " gives " ab", "ab " and " ab "). Vectorised, because one long token (base64,
    an identifier, a CJK sentence) has thousands of n-grams."""
    padded = "".join(f" {word} " for word in words)
    # A code point per character, plus 1 so that 0 can stand for "no character".
    codes = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    codes += np.uint64(1)
    lengths = np.fromiter((len(word) + 2 for word in words), dtype=np.int64, count=len(words))
    owner = np.repeat(np.arange(len(words)), lengths)  # the word of each character
    word_end = np.cumsum(lengths)[owner]
    position = np.arange(len(codes))
    rows: list[npt.NDArray[np.int64]] = []
    keys: list[npt.NDArray[np.uint64]] = []
    for size in _NGRAM_SIZES:
        start = position[position + size <= word_end]
        rows.append(owner[start])
        keys.append(_ngram_keys(codes, start, size))
    grams, columns = np.unique(np.concatenate(keys), return_inverse=True)
    return sp.csr_matrix(
        (np.ones(len(columns)), (np.concatenate(rows), columns)),
        shape=(len(words), len(grams)),
    )  # duplicates stay: the product in `_char_gram_vectors` sums them


_BITS = np.uint64(21)  # per code point: Unicode ends at 0x10FFFF


def _ngram_keys(
    codes: npt.NDArray[np.uint64], start: npt.NDArray[np.int64], size: int
) -> npt.NDArray[np.uint64]:
    """A 64-bit key for the `size` code points at each of `start` (size <= 5). The first three
    fill one 63-bit word and the other two another, exactly; the first mixed, XOR the second,
    makes one key, shared by two different n-grams with odds of about 2^-64."""
    none = np.zeros(len(start), dtype=np.uint64)
    c = [codes[start + k] if k < size else none for k in range(5)]
    return _mix((c[0] << _BITS | c[1]) << _BITS | c[2]) ^ (c[3] << _BITS | c[4])


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: a bijection of 64-bit integers that scatters similar inputs."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _l2_normalise(rows: sp.csr_matrix) -> None:
    """Scale each row of `rows` (in place) to unit length; an empty row stays empty."""
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    norms = np.sqrt(np.bincount(row_of, weights=rows.data**2, minlength=rows.shape[0]))
    rows.data /= norms[row_of]


def _bm25(word_counts: sp.csr_matrix, words: list[str], n: int) -> Vector:
    """Okapi BM25 of the query (row 0) against each candidate (rows 1..n); `words` by id."""
    documents = sp.csr_matrix(word_counts[1:])
    query_terms = np.unique(word_counts[0].indices)
    content = [term for term in query_terms if words[term] not in _STOP_WORDS]
    if content:
        query_terms = np.asarray(content, dtype=np.int64)
    lengths = np.asarray(documents.sum(axis=1)).ravel()
    if query_terms.size == 0 or lengths.sum() == 0:
        return np.zeros(n, dtype=np.float64)
    document_frequency = np.bincount(documents.indices, minlength=documents.shape[1])
    df = document_frequency[query_terms]
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    tf = documents[:, query_terms].toarray()  # (n, distinct query words)
    norm = _K1 * (1.0 - _B + _B * lengths / lengths.mean())
    return np.asarray((idf * tf * (_K1 + 1.0) / (tf + norm[:, None])).sum(axis=1))


# --- embeddings ----------------------------------------------------------------------------

# HTTP statuses that may pass (timeout, too early, too many requests); every 5xx does too.
_TRANSIENT_HTTP = frozenset({408, 425, 429})


@dataclass(frozen=True)
class EmbeddingScorer:
    """Cosines of an OpenAI-compatible endpoint's embeddings (module docstring)."""

    url: str
    key: str | None = field(default=None, repr=False)
    model: str | None = None
    timeout_seconds: float = 20.0
    name = "embeddings"  # not a field

    def score(self, query: str, candidates: Sequence[str]) -> Scores:
        """Raises `ScorerUnavailable` (retry later) or `ScorerRejected` (module docstring)."""
        vectors = self._embed([query, *candidates])
        norms = np.linalg.norm(vectors, axis=1)
        unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]  # a zero vector stays zero
        relevance = np.clip(unit[1:] @ unit[0], 0.0, 1.0)
        best = relevance.max(initial=0.0)
        if best > 0.0:
            relevance = relevance / best
        similarity = np.clip(unit[1:] @ unit[1:].T, 0.0, 1.0)
        similarity = (similarity + similarity.T) / 2.0
        np.fill_diagonal(similarity, 1.0)
        return Scores(np.asarray(relevance, dtype=np.float64), similarity)

    def _embed(self, texts: list[str]) -> Matrix:
        """One row per text, in order."""
        body: dict[str, Any] = {"input": texts}
        if self.model is not None:
            body["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["api-key"] = self.key  # Azure OpenAI
            headers["Authorization"] = f"Bearer {self.key}"  # OpenAI and most others
        try:
            request = urllib.request.Request(
                self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
            )
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in _TRANSIENT_HTTP or exc.code >= 500:
                raise ScorerUnavailable(
                    f"The embeddings scorer's endpoint answered HTTP {exc.code}; retry later"
                ) from exc
            # Its body is not quoted: a 401 may echo part of the key.
            raise ScorerRejected(
                f"The embeddings scorer's endpoint refused the request (HTTP {exc.code})"
            ) from exc
        except (ValueError, http.client.InvalidURL) as exc:  # "unknown url type", a bad port
            raise ScorerRejected(
                "The embeddings scorer's request could not be made: check its URL and key"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:  # refused, DNS, timeout, reset
            raise ScorerUnavailable(
                "The embeddings scorer's endpoint could not be reached or did not answer in time"
            ) from exc
        return _vectors(payload, len(texts))


def _vectors(payload: bytes, count: int) -> Matrix:
    """The `count` embeddings of an OpenAI-style response, ordered by `index` (by position in
    `data` where an item has none)."""

    def malformed(why: str) -> ScorerRejected:
        return ScorerRejected(f"The embeddings scorer's endpoint sent a malformed response: {why}")

    try:
        data = json.loads(payload)["data"]
    except (ValueError, TypeError, KeyError) as exc:
        raise malformed("no JSON object with `data`") from exc
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "none"
        raise malformed(f"expected {count} embeddings, got {got}")
    by_index: dict[int, Any] = {}
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise malformed(f"item {position} has no valid `index`")
        by_index[index] = item.get("embedding")
    if len(by_index) != count:
        raise malformed("repeated `index`")
    try:
        vectors = np.array([by_index[i] for i in range(count)])
    except ValueError as exc:  # ragged
        raise malformed("embeddings of different lengths") from exc
    if vectors.ndim != 2 or vectors.shape[1] == 0 or vectors.dtype.kind not in "iuf":
        raise malformed("embeddings are not lists of numbers of one length")
    vectors = vectors.astype(np.float64)
    if not np.isfinite(vectors).all():
        raise malformed("embeddings hold non-finite numbers")
    return vectors
