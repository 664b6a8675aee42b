"""Queue triggers and queue outputs against real Azurite queues.

The queues sample app records every invocation (including failed ones) to a file;
each test gets its own queue names, so tests never see each other's messages.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from conftest import AppRunner, Storage


NONE_ENCODING = {"extensions": {"queues": {"messageEncoding": "none"}}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def test_an_http_request_flows_through_queue_outputs_and_triggers_to_the_last_function(
    run_app: AppRunner, storage
) -> None:
    # given HTTP -> queue out -> queue trigger -> $return queue out -> queue trigger
    app = run_app.start("queues")
    # when the HTTP function is called
    response = requests.post(f"{app.url}/api/enqueue", data="order-1", timeout=10)
    # then the last function gets what the first trigger returned, on its first delivery
    assert response.status_code == 202
    records = app.wait_for_records(lambda r: len(r) >= 1, function="chain_last")
    assert [(r["body"], r["dequeue_count"]) for r in records] == [("order-1 -> chain_first", 1)]
    # and no queue of the chain keeps a message
    assert storage.peek(app.settings["ChainStartQueue"]) == []
    assert storage.peek(app.settings["ChainMiddleQueue"]) == []


def test_queue_output_is_stored_base64_encoded_by_default(
    run_app: AppRunner, storage: Storage
) -> None:
    # given the default messageEncoding (base64)
    app = run_app.start("queues")
    # when a function writes a message to a queue nobody listens on
    requests.post(f"{app.url}/api/publish", data="hello ✓", timeout=10)
    # then the stored text is the base64 of the UTF-8 body
    assert storage.wait_for_messages(app.settings["OutboxQueue"]) == [b64("hello ✓")]


def test_queue_output_is_stored_as_plain_text_with_message_encoding_none(
    run_app: AppRunner, storage: Storage
) -> None:
    # given host.json sets messageEncoding to none
    app = run_app.start("queues", host_json=NONE_ENCODING)
    # when a function writes a message
    requests.post(f"{app.url}/api/publish", data='{"hello": "✓"}', timeout=10)
    # then the stored text is the body itself
    assert storage.wait_for_messages(app.settings["OutboxQueue"]) == ['{"hello": "✓"}']


def test_a_base64_message_reaches_the_function_decoded(
    run_app: AppRunner, storage: Storage
) -> None:
    # given the default messageEncoding and a producer that base64-encodes
    app = run_app.start("queues")
    # when it sends a message
    storage.send(app.settings["EchoQueue"], '{"job": 7}', base64_encode=True)
    # then the function sees the decoded text
    records = app.wait_for_records(lambda r: len(r) >= 1, function="echo")
    assert [r["body"] for r in records] == ['{"job": 7}']


def test_a_plain_message_reaches_the_function_as_is_with_message_encoding_none(
    run_app: AppRunner, storage
) -> None:
    # given messageEncoding none and a producer that sends plain text
    app = run_app.start("queues", host_json=NONE_ENCODING)
    # when it sends text that would not even be valid base64
    storage.send(app.settings["EchoQueue"], "plain text, not base64!", base64_encode=False)
    # then the function sees exactly that text
    records = app.wait_for_records(lambda r: len(r) >= 1, function="echo")
    assert [r["body"] for r in records] == ["plain text, not base64!"]


def test_a_failed_message_is_retried_and_the_function_sees_its_dequeue_count(
    run_app: AppRunner, storage
) -> None:
    # given a function that fails on a message's first delivery only
    app = run_app.start("queues")
    # when a message arrives
    storage.send(app.settings["FlakyQueue"], "retry me")
    # then it is delivered again, the function sees counts 1 then 2, and the second succeeds
    records = app.wait_for_records(lambda r: len(r) >= 2, function="flaky")
    assert [r["dequeue_count"] for r in records] == [1, 2]
    assert len({r["id"] for r in records}) == 1
    app.host.wait_for_log("Executed 'Functions.flaky' (Succeeded")
    assert storage.peek(app.settings["FlakyQueue"]) == []
    assert storage.peek(app.settings["FlakyQueue"] + "-poison") == []


def test_a_message_that_keeps_failing_moves_to_the_poison_queue_after_max_dequeue_count(
    run_app: AppRunner, storage
) -> None:
    # given a function that always fails and host.json maxDequeueCount 3
    app = run_app.start("queues")
    queue = app.settings["PoisonQueue"]
    # when a message arrives
    storage.send(queue, "doomed")
    # then the stored message ends in <queue>-poison unchanged
    assert storage.wait_for_messages(f"{queue}-poison") == [b64("doomed")]
    # and the function saw it exactly three times, with counts 1..3
    records = app.records("always_fails")
    assert [r["dequeue_count"] for r in records] == [1, 2, 3]
    assert storage.peek(queue) == []


def test_a_malformed_base64_message_goes_to_poison_without_invoking_the_function(
    run_app: AppRunner, storage
) -> None:
    # given the default base64 messageEncoding
    app = run_app.start("queues")
    queue = app.settings["EchoQueue"]
    # when a producer forgets to encode a message, then sends a well-formed one
    storage.send(queue, "{not base64!}", base64_encode=False)
    storage.send(queue, "well formed")
    # then the malformed one lands in poison at once, as stored, and the function never sees it
    assert storage.wait_for_messages(f"{queue}-poison") == ["{not base64!}"]
    records = app.wait_for_records(lambda r: len(r) >= 1, function="echo")
    assert [r["body"] for r in records] == ["well formed"]
    app.host.wait_for_log("Executed 'Functions.echo' (Succeeded")
    log = app.host.wait_for_log("-poison (message is not valid base64")
    assert log.count("Executed 'Functions.echo'") == 1
    assert storage.peek(queue) == []


def test_a_burst_of_messages_is_processed_once_each(run_app: AppRunner, storage: Storage) -> None:
    # given more messages than one batch (batchSize 16)
    app = run_app.start("queues")
    bodies = [f"message-{i}" for i in range(40)]
    # when they are all queued
    for body in bodies:
        storage.send(app.settings["EchoQueue"], body)
    # then each reaches the function exactly once, on its first delivery
    records = app.wait_for_records(lambda r: len(r) >= 40, function="echo", timeout=30)
    assert sorted(r["body"] for r in records) == sorted(bodies)
    assert {r["dequeue_count"] for r in records} == {1}


def test_a_message_in_flight_when_the_host_is_killed_is_delivered_again_after_its_lease(
    run_app: AppRunner, storage
) -> None:
    # given a short message lease and a function that hangs on a first delivery
    app = run_app.start("queues", settings={"FUNCHOST_QUEUE_LEASE_SECONDS": "3"})
    storage.send(app.settings["SlowQueue"], "survive a crash")
    app.wait_for_records(lambda r: len(r) >= 1, function="slow")
    # when the host is killed mid-invocation and started again
    app.host.kill()
    app.host.start()
    # then the message is delivered a second time and completes
    records = app.wait_for_records(
        lambda r: any(x["phase"] == "finished" for x in r), function="slow", timeout=20
    )
    assert [(r["phase"], r["dequeue_count"]) for r in records] == [
        ("started", 1),
        ("started", 2),
        ("finished", 2),
    ]
    assert storage.peek(app.settings["SlowQueue"]) == []
