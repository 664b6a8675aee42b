"""The stream's frames, its signature check and its publisher's bounded queue."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

import pytest

from shared import events
from shared.config import SettingsError, StreamSettings
from shared.events import Event
from shared.stream import messages
from shared.stream.publisher import Publisher
from shared.stream.service import signature_valid


def test_a_subscription_frame_names_its_key_and_topics_once_each() -> None:
    frame = '{"api_key": "k", "subscribe": ["job_updates", "backend_status", "job_updates"]}'

    subscription = messages.parse_subscription(frame)

    assert subscription.api_key == "k"
    assert subscription.topics == ("job_updates", "backend_status")
    assert messages.groups_for("u1", subscription.topics) == ["user.u1", "backend_status"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("nope", "INVALID_FRAME"),
        ("[1]", "INVALID_FRAME"),
        ('{"subscribe": ["job_updates"]}', "INVALID_FRAME"),
        ('{"api_key": "k", "subscribe": []}', "INVALID_FRAME"),
        ('{"api_key": "k", "subscribe": "job_updates"}', "INVALID_FRAME"),
        ('{"api_key": "k", "subscribe": ["job_updates"], "user_id": "x"}', "INVALID_FRAME"),
        ('{"api_key": "k", "subscribe": ["gossip"]}', "UNKNOWN_TOPIC"),
        ('{"api_key": "' + "k" * 5000 + '", "subscribe": ["job_updates"]}', "INVALID_FRAME"),
    ],
)
def test_a_bad_frame_is_refused_with_its_error_code(frame: str, code: str) -> None:
    with pytest.raises(messages.FrameError) as refused:
        messages.parse_subscription(frame)
    assert refused.value.error_code == code


def test_a_job_event_goes_to_its_owners_group_and_a_backend_event_to_everyone() -> None:
    job = messages.for_event(Event("job", "j1", "queued", user_id="u1", at="2026-01-01T00:00:00Z"))
    backend = messages.for_event(Event("backend", "ibm_kyiv", "offline", queue_depth=3))
    ownerless = messages.for_event(Event("job", "j2", "queued"))

    assert job is not None and job.group == "user.u1"
    assert job.message == {
        "type": "job_update",
        "job_id": "j1",
        "status": "queued",
        "timestamp": "2026-01-01T00:00:00Z",
        "job_type": "job",
    }
    assert backend is not None and backend.group == "backend_status"
    assert backend.message["id"] == "ibm_kyiv" and backend.message["queue_depth"] == 3
    assert ownerless is None


def test_a_fan_outs_updates_carry_its_progress_and_its_runs_name_it() -> None:
    run_id = "0c6f3f5e-8d0a-4c57-9a43-4f1f0b7a2a11-1-0"
    ended = events.RunEnded(run_id, "braket_iqm_garnet", "completed")
    progress = messages.for_event(
        Event(
            "network_job",
            "0c6f3f5e-8d0a-4c57-9a43-4f1f0b7a2a11",
            "running",
            user_id="u1",
            progress=events.Progress(3, 2, ended),
            at="2026-01-01T00:00:01Z",
        )
    )
    queued = messages.for_event(
        Event("network_job", "n1", "queued", user_id="u1", progress=events.Progress(3))
    )
    run = messages.for_event(
        Event(
            "job",
            run_id,
            "completed",
            user_id="u1",
            backend="braket_iqm_garnet",
            network_job_id="0c6f3f5e-8d0a-4c57-9a43-4f1f0b7a2a11",
        )
    )

    assert progress is not None and progress.message == {
        "type": "job_update",
        "job_id": "0c6f3f5e-8d0a-4c57-9a43-4f1f0b7a2a11",
        "status": "running",
        "timestamp": "2026-01-01T00:00:01Z",
        "job_type": "network_job",
        "runs_planned": 3,
        "runs_finished": 2,
        "run": {"run_id": run_id, "backend": "braket_iqm_garnet", "status": "completed"},
    }
    assert queued is not None and queued.message["runs_planned"] == 3
    assert "runs_finished" not in queued.message  # not known: never a guess
    assert run is not None
    assert run.message["network_job_id"] == "0c6f3f5e-8d0a-4c57-9a43-4f1f0b7a2a11"
    assert run.message["backend"] == "braket_iqm_garnet"


def test_the_signature_is_an_hmac_of_the_connection_id_with_the_access_key() -> None:
    good = "sha256=" + hmac.new(b"key", b"conn", hashlib.sha256).hexdigest()

    assert signature_valid("key", "conn", good)
    assert signature_valid("key", "conn", "sha256=00, " + good)  # one per access key
    assert not signature_valid("other", "conn", good)
    assert not signature_valid("key", "conn2", good)
    assert not signature_valid("key", "conn", None)


def test_the_access_key_and_the_client_origin_come_from_the_connection_string() -> None:
    local = StreamSettings("Endpoint=http://127.0.0.1;Port=7080;AccessKey=abc=;Version=1.0;")
    azure = StreamSettings("Endpoint=https://qcos.webpubsub.azure.com;AccessKey=k;Version=1.0;")

    assert local.access_key == "abc="
    assert local.client_origin == "ws://127.0.0.1:7080"
    assert azure.client_origin == "wss://qcos.webpubsub.azure.com"
    assert StreamSettings().client_origin is None and StreamSettings().access_key == ""


def test_stream_settings_need_an_access_key_and_a_hub_name() -> None:
    assert not StreamSettings.from_env({}).configured
    assert StreamSettings.from_env({}).hub == "qcos"
    with pytest.raises(SettingsError, match="AccessKey"):
        StreamSettings.from_env({"QCOS_WEBPUBSUB_CONNECTION_STRING": "Endpoint=https://x;"})
    with pytest.raises(SettingsError, match="HUB"):
        StreamSettings.from_env({"QCOS_WEBPUBSUB_HUB": "no-dashes"})


class _Recorder:
    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.sent: list[tuple[str, dict[str, object]]] = []

    def send_to_group(self, group: str, message: dict[str, object], **kwargs: object) -> None:
        self.gate.wait(10)
        self.sent.append((group, message))


def test_the_publisher_only_queues_and_drops_what_does_not_fit() -> None:
    # given a publisher whose service is stuck, with room for two events
    gate = threading.Event()
    recorder = _Recorder(gate)
    publisher = Publisher(lambda: recorder, queue_size=2).start()
    try:
        # when five events are published (the first is taken by the stuck sender)
        for n in range(5):
            events.publish(Event("job", f"j{n}", "queued", user_id="u1"))
            if n == 0:
                while publisher._queue.qsize():  # until the thread has taken it
                    time.sleep(0.005)
        # then the publishing never blocked, and what did not fit was dropped and counted
        assert publisher.dropped == 2
    finally:
        gate.set()
        publisher.close()
    assert [m["job_id"] for _, m in recorder.sent] == ["j0", "j1", "j2"]
    assert publisher.sent == 3


def test_a_jobs_update_after_its_terminal_one_is_not_sent() -> None:
    gate = threading.Event()
    gate.set()
    recorder = _Recorder(gate)
    publisher = Publisher(lambda: recorder).start()
    try:
        # a network job's progress, read just before it ended, published after its end
        for status in ("queued", "running", "completed", "running"):
            events.publish(Event("network_job", "n1", status, user_id="u1"))
        events.publish(Event("network_job", "n2", "running", user_id="u1"))
        assert publisher.wait_idle()
    finally:
        publisher.close()

    assert [(m["job_id"], m["status"]) for _, m in recorder.sent] == [
        ("n1", "queued"),
        ("n1", "running"),
        ("n1", "completed"),
        ("n2", "running"),
    ]
    assert publisher.stale == 1
