"""`shared.rerank.scoring`: the lexical scorer on real sentences, the embeddings scorer against a
real local HTTP server serving vectors chosen so that every expected score is known, and the
choice of scorer by settings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from funchost.testing import free_port
from shared.config import RerankSettings
from shared.errors import ServiceUnavailable
from shared.rerank.problem import Scores
from shared.rerank.scoring import (
    EmbeddingScorer,
    LexicalScorer,
    ScorerRejected,
    ScorerUnavailable,
    build_scorer,
)

RERANK_QUERY = "how to rerank search results for diversity"
ON_TOPIC = [
    "Reranking search results with a diversity penalty avoids showing the same answer twice.",
    "A rerank step orders retrieved passages by how well they answer the question.",
    "Diverse search results cover more of what the user may have meant.",
]
OFF_TOPIC = [
    "Preheat the oven to 200 degrees and bake the loaf for forty minutes.",
    "The central bank raised interest rates by a quarter of a percentage point on Tuesday.",
    "Heavy rain is expected across the north of the country this weekend.",
]
REWORDED = [
    (
        "The central bank raised interest rates by a quarter of a percentage point on Tuesday.",
        "On Tuesday the central bank raised its interest rate by a quarter percentage point.",
    ),
    (
        "Our new rerank endpoint picks the most relevant passages and drops near-duplicates.",
        "The new reranking endpoint chooses the most relevant passages, removing near duplicates.",
    ),
    (
        "Preheat the oven to 200 degrees and bake the loaf for forty minutes.",
        "Bake the loaf for forty minutes in an oven preheated to 200 degrees.",
    ),
]
OTHER_TOPICS = [
    "Quantum computers use qubits that can be in a superposition of states.",
    "The striker scored twice in the second half to win the cup final.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
]


def assert_well_formed(scores: Scores, n: int) -> None:
    assert scores.relevance.shape == (n,)
    assert scores.similarity.shape == (n, n)
    for values in (scores.relevance, scores.similarity):
        assert np.isfinite(values).all()
        assert values.min() >= 0.0 and values.max() <= 1.0
    assert np.array_equal(scores.similarity, scores.similarity.T)
    assert np.array_equal(np.diag(scores.similarity), np.ones(n))


# --- lexical: relevance --------------------------------------------------------------------


def test_on_topic_candidates_outrank_off_topic_ones_and_the_best_scores_one() -> None:
    # given
    candidates = [OFF_TOPIC[0], ON_TOPIC[0], OFF_TOPIC[1], ON_TOPIC[1], OFF_TOPIC[2], ON_TOPIC[2]]

    # when
    scores = LexicalScorer().score(RERANK_QUERY, candidates)

    # then
    assert_well_formed(scores, len(candidates))
    on_topic = scores.relevance[[1, 3, 5]]
    off_topic = scores.relevance[[0, 2, 4]]
    assert on_topic.min() > off_topic.max() + 0.2
    assert scores.relevance.max() == pytest.approx(1.0)
    assert int(np.argmax(scores.relevance)) == 1  # the one sharing "search results diversity"


def test_function_words_of_the_query_do_not_make_an_off_topic_candidate_relevant() -> None:
    # given: "to" and "how" occur in off-topic sentences only
    candidates = [
        "Preheat the oven to 200 degrees and bake the loaf.",
        "Here is how the striker scored twice.",
        "Results ranked by diversity.",
    ]

    # when
    relevance = LexicalScorer().score(RERANK_QUERY, candidates).relevance

    # then
    assert relevance[2] == pytest.approx(1.0)
    assert relevance[:2].max() < 0.1


def test_a_candidate_sharing_only_a_variant_of_a_query_word_is_relevant() -> None:
    # given: "reranking" occurs in the first candidate, only "rerank" in the second; all of
    # them share "the" with the query
    query = "reranking the passages"
    candidates = [
        "Reranking the passages by relevance.",
        "We rerank what the retriever found.",
        "The striker scored twice in the second half.",
        "Heavy rain is expected across the north of the country this weekend.",
        "Bake the bread in the oven.",
    ]

    # when
    relevance = LexicalScorer().score(query, candidates).relevance

    # then
    assert relevance[0] == pytest.approx(1.0)
    assert relevance[1] > 2 * relevance[2:].max()


def test_a_query_that_no_candidate_contains_keeps_the_character_cosine_unscaled() -> None:
    # given: no word of the query occurs in any candidate
    candidates = ["We rerank what the retriever found.", "The cat sat on the mat."]

    # when
    relevance = LexicalScorer().score("reranking", candidates).relevance

    # then: the variant still counts, but nothing is declared a perfect match
    assert 0.1 < relevance[0] < 1.0
    assert relevance[1] < relevance[0] / 2


def test_case_and_unicode_forms_do_not_matter() -> None:
    # given: upper case, and the composed and decomposed forms of "é"
    candidates = ["CAFE\u0301 CRÈME AU LAIT", "café crème au lait", "The striker scored twice."]

    # when
    scores = LexicalScorer().score("Café crème", candidates)

    # then
    assert scores.relevance[0] == pytest.approx(1.0)
    assert scores.relevance[1] == pytest.approx(1.0)
    assert scores.similarity[0, 1] == pytest.approx(1.0)
    assert scores.relevance[2] < 0.1


def test_cjk_text_without_spaces_is_scored_by_its_characters() -> None:
    # given: Japanese, where a sentence is one run of word characters
    candidates = [
        "量子コンピュータの研究が進んでいる",
        "今日は一日中雨が降った",
        "量子コンピュータ入門",
    ]

    # when
    scores = LexicalScorer().score("量子コンピュータ", candidates)

    # then
    assert_well_formed(scores, 3)
    assert min(scores.relevance[0], scores.relevance[2]) > scores.relevance[1] + 0.2
    assert scores.similarity[0, 2] > scores.similarity[0, 1]


def test_a_candidates_scores_do_not_depend_on_its_position() -> None:
    # given
    candidates = [*ON_TOPIC, *OFF_TOPIC]
    order = [4, 0, 5, 2, 1, 3]

    # when
    scores = LexicalScorer().score(RERANK_QUERY, candidates)
    shuffled = LexicalScorer().score(RERANK_QUERY, [candidates[i] for i in order])

    # then
    np.testing.assert_allclose(shuffled.relevance, scores.relevance[order], atol=1e-12)
    np.testing.assert_allclose(
        shuffled.similarity, scores.similarity[np.ix_(order, order)], atol=1e-12
    )


# --- lexical: similarity -------------------------------------------------------------------


def test_reworded_sentences_are_similar_and_sentences_on_other_topics_are_not() -> None:
    # given
    candidates = [sentence for pair in REWORDED for sentence in pair] + OTHER_TOPICS

    # when
    similarity = LexicalScorer().score("anything", candidates).similarity

    # then
    topic = [0, 0, 1, 1, 2, 2, 3, 4, 5]
    for i in range(len(candidates)):
        for j in range(len(candidates)):
            if i == j:
                continue
            if topic[i] == topic[j]:
                assert similarity[i, j] >= 0.6, (candidates[i], candidates[j])
            else:
                assert similarity[i, j] <= 0.2, (candidates[i], candidates[j])


def test_a_reworded_pair_alone_is_still_similar_and_an_unrelated_pair_alone_is_not() -> None:
    # given: two candidates only, where document frequencies tell little
    scorer = LexicalScorer()

    # when
    reworded = scorer.score("", list(REWORDED[0])).similarity[0, 1]
    unrelated = scorer.score("", [REWORDED[0][0], OTHER_TOPICS[2]]).similarity[0, 1]

    # then
    assert reworded >= 0.6
    assert unrelated <= 0.2


def test_odd_inputs_give_finite_scores_in_range() -> None:
    # given
    candidates = ["!!!", "", "   ", "!!!", "naïve café", "🙂🙂", "same text", "same text", "x"]

    # when
    scores = LexicalScorer().score("same text?", candidates)

    # then
    assert_well_formed(scores, len(candidates))
    assert scores.relevance[6] == scores.relevance[7] == pytest.approx(1.0)
    assert scores.similarity[6, 7] == pytest.approx(1.0)
    assert scores.relevance[[0, 1, 2, 3, 5]].max() == 0.0  # no word characters at all


def test_a_query_without_word_characters_is_relevant_to_nothing() -> None:
    # when
    scores = LexicalScorer().score("?!", ["A sentence.", "Another sentence."])

    # then
    assert_well_formed(scores, 2)
    assert scores.relevance.tolist() == [0.0, 0.0]
    assert scores.similarity[0, 1] > 0.3


def test_long_candidates_and_single_long_tokens_are_scored() -> None:
    # given: prose, and a base64-like token of 2,000 characters with no space
    rng = np.random.default_rng(7)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    blob = "".join(rng.choice(alphabet, 2000))
    candidates = [" ".join(ON_TOPIC * 20), blob, blob[:1900] + "different tail", OFF_TOPIC[0]]

    # when
    scores = LexicalScorer().score(RERANK_QUERY, candidates)

    # then
    assert_well_formed(scores, 4)
    assert scores.relevance[0] == pytest.approx(1.0)
    assert scores.similarity[1, 2] > 0.8
    assert scores.similarity[1, 3] < 0.05


# --- embeddings ----------------------------------------------------------------------------

KEY = "sk-test-0123456789abcdef"
# The query first, then four candidates: cosines with the query 0.8, 0.6, 0 and -1.
VECTORS = [[1.0, 0.0, 0.0], [4.0, 3.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 5.0], [-2.0, 0.0, 0.0]]
CANDIDATES = ["passage one", "passage two", "passage three", "passage four"]


@dataclass
class Received:
    path: str
    headers: Message
    body: dict[str, Any]


@dataclass
class Endpoint:
    """A real HTTP server on 127.0.0.1: what it answers, and what it was sent."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    delay_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)

    def answer(self, vectors: list[list[float]], order: list[int] | None = None) -> None:
        order = order if order is not None else list(range(len(vectors)))
        data = [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in order]
        self.body = json.dumps({"object": "list", "data": data, "model": "m"}).encode()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)  # urllib would send 127.0.0.1 through one
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(self.path, self.headers, json.loads(raw)))
            time.sleep(state.delay_seconds)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: `shutdown` waits for one.
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/openai/v1/embeddings"
    yield state
    server.shutdown()
    server.server_close()


def scorer_for(endpoint: Endpoint, **overrides: Any) -> EmbeddingScorer:
    settings: dict[str, Any] = {"key": KEY, "model": "text-embedding-3-small"}
    return EmbeddingScorer(url=endpoint.url, **{**settings, **overrides})


def test_embeddings_request_carries_the_texts_the_model_and_both_auth_headers(
    endpoint: Endpoint,
) -> None:
    # given
    endpoint.answer(VECTORS)

    # when
    scorer_for(endpoint).score("the query", CANDIDATES)

    # then
    [request] = endpoint.received
    assert request.path == "/openai/v1/embeddings"
    assert request.body == {
        "input": ["the query", *CANDIDATES],
        "model": "text-embedding-3-small",
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["api-key"] == KEY
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_embeddings_request_without_model_or_key_sends_neither(endpoint: Endpoint) -> None:
    # given
    endpoint.answer(VECTORS)

    # when
    scorer_for(endpoint, key=None, model=None).score("the query", CANDIDATES)

    # then
    [request] = endpoint.received
    assert request.body == {"input": ["the query", *CANDIDATES]}
    assert "api-key" not in request.headers
    assert "Authorization" not in request.headers


def test_embeddings_scores_are_clipped_cosines_with_the_best_relevance_one(
    endpoint: Endpoint,
) -> None:
    # given: the vectors come back out of order; `index` says whose each is
    endpoint.answer(VECTORS, order=[3, 0, 4, 2, 1])

    # when
    scores = scorer_for(endpoint).score("the query", CANDIDATES)

    # then: cosines 0.8, 0.6, 0, -1 with the query; 0.96 between the first two candidates
    assert_well_formed(scores, 4)
    np.testing.assert_allclose(scores.relevance, [1.0, 0.75, 0.0, 0.0], atol=1e-12)
    expected = np.eye(4)
    expected[0, 1] = expected[1, 0] = 0.96
    np.testing.assert_allclose(scores.similarity, expected, atol=1e-12)


def test_embeddings_relevance_stays_zero_when_no_candidate_points_the_query_s_way(
    endpoint: Endpoint,
) -> None:
    # given
    endpoint.answer([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])

    # when
    scores = scorer_for(endpoint).score("the query", ["a", "b"])

    # then
    assert scores.relevance.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_a_busy_or_failing_endpoint_is_unavailable_for_now(endpoint: Endpoint, status: int) -> None:
    # given: an error body that quotes the key, as some services do
    endpoint.status = status
    endpoint.body = json.dumps({"error": {"message": f"try later, {KEY}"}}).encode()

    # when
    with pytest.raises(ScorerUnavailable) as raised:
        scorer_for(endpoint).score("the query", CANDIDATES)

    # then
    assert isinstance(raised.value, ServiceUnavailable)  # the job queue retries it
    assert "embeddings scorer" in raised.value.detail
    assert str(status) in raised.value.detail
    assert KEY not in str(raised.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refused_request_fails_without_retry_and_without_the_key(
    endpoint: Endpoint, status: int
) -> None:
    # given: OpenAI's 401 quotes part of the key; this one quotes all of it
    endpoint.status = status
    endpoint.body = json.dumps({"error": {"message": f"Incorrect API key: {KEY}"}}).encode()

    # when
    with pytest.raises(ScorerRejected) as raised:
        scorer_for(endpoint).score("the query", CANDIDATES)

    # then
    assert not isinstance(raised.value, ServiceUnavailable)
    assert raised.value.status == 502
    assert f"HTTP {status}" in raised.value.detail
    assert KEY not in str(raised.value)


def test_a_refused_connection_is_unavailable() -> None:
    # given: a port nothing listens on
    scorer = EmbeddingScorer(url=f"http://127.0.0.1:{free_port()}/embeddings", key=KEY)

    # when
    with pytest.raises(ScorerUnavailable) as raised:
        scorer.score("the query", CANDIDATES)

    # then
    assert "embeddings scorer" in raised.value.detail
    assert KEY not in str(raised.value)


def test_an_endpoint_slower_than_the_timeout_is_unavailable(endpoint: Endpoint) -> None:
    # given
    endpoint.answer(VECTORS)
    endpoint.delay_seconds = 2.0

    # when
    started = time.monotonic()
    with pytest.raises(ScorerUnavailable):
        scorer_for(endpoint, timeout_seconds=0.2).score("the query", CANDIDATES)

    # then
    assert time.monotonic() - started < 1.5


def test_a_url_urllib_cannot_use_is_rejected() -> None:
    # when
    with pytest.raises(ScorerRejected) as raised:
        EmbeddingScorer(url="embeddings.example/v1", key=KEY).score("q", ["c"])

    # then
    assert KEY not in str(raised.value)


def listing(embeddings: list[Any], indices: list[int] | None = None) -> bytes:
    """A response with these embeddings, at `indices` (default 0, 1, ...)."""
    indices = indices if indices is not None else list(range(len(embeddings)))
    data = [{"index": i, "embedding": e} for i, e in zip(indices, embeddings, strict=True)]
    return json.dumps({"data": data}).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>Bad gateway</html>", id="not-json"),
        pytest.param(b'{"error": "no data"}', id="no-data"),
        pytest.param(b'["a list"]', id="not-an-object"),
        pytest.param(listing([[1.0, 0.0]] * 3), id="too-few"),
        pytest.param(listing([[1.0, 0.0]] * 6), id="too-many"),
        pytest.param(listing([[1.0, 0.0]] * 5, [0, 0, 1, 2, 3]), id="repeated-index"),
        pytest.param(listing([[1.0, 0.0]] * 5, [1, 2, 3, 4, 5]), id="index-out-of-range"),
        pytest.param(listing([[1.0] * (i + 1) for i in range(5)]), id="ragged"),
        pytest.param(listing([["1.0", "0"]] * 5), id="strings"),
        pytest.param(listing([None] * 5), id="null"),
        pytest.param(listing([[]] * 5), id="empty-vectors"),
        pytest.param(b'{"data": [1, 2, 3, 4, 5]}', id="items-not-objects"),
    ],
)
def test_a_malformed_response_is_rejected(endpoint: Endpoint, body: bytes) -> None:
    # given
    endpoint.body = body

    # when
    with pytest.raises(ScorerRejected) as raised:
        scorer_for(endpoint).score("the query", CANDIDATES)

    # then
    assert not isinstance(raised.value, ServiceUnavailable)
    assert "embeddings scorer" in raised.value.detail
    assert KEY not in str(raised.value)


# --- choice --------------------------------------------------------------------------------


def test_build_scorer_picks_the_lexical_scorer_by_default() -> None:
    # when
    scorer = build_scorer(RerankSettings())

    # then
    assert isinstance(scorer, LexicalScorer)
    assert scorer.name == "lexical"


def test_build_scorer_picks_the_embeddings_scorer_with_its_settings() -> None:
    # given
    settings = RerankSettings(
        scorer="embeddings",
        embeddings_url="https://example.openai.azure.com/openai/v1/embeddings",
        embeddings_key=KEY,
        embeddings_model="text-embedding-3-small",
        embeddings_timeout_seconds=7,
    )

    # when
    scorer = build_scorer(settings)

    # then
    assert isinstance(scorer, EmbeddingScorer)
    assert scorer.name == "embeddings"
    assert (scorer.url, scorer.key, scorer.model, scorer.timeout_seconds) == (
        settings.embeddings_url,
        KEY,
        "text-embedding-3-small",
        7,
    )
    assert KEY not in repr(scorer)
