"""The storage clients' HTTP transport (`shared.storage.transport`): what goes on the wire and
which error each failure becomes, side by side with azure-core's `RequestsTransport` (against a
small socket server that answers as each case needs), the proxy and CA bundle the environment
names, and the clients' real work against Azurite: a streamed 5 MB download, a table batch, a
dead endpoint, the call count."""

from __future__ import annotations

import io
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.data.tables import TableTransactionError

from funchost.testing import AZURITE_KEY, free_port
from shared.config import get_settings
from shared.services import Services
from shared.storage import calls, clients
from shared.storage.clients import Storage
from shared.storage.transport import StorageTransport

TIMEOUTS = {"connection_timeout": 2, "read_timeout": 0.5}
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n"


def read_request(conn: socket.socket) -> bytes:
    """One request, head and body (by Content-Length or chunked), as its bytes on the wire."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b"\0"
        if data.endswith(b"\0"):
            return b""  # the client went away
    head, _, body = data.partition(b"\r\n\r\n")
    headers = head.decode("latin-1").lower()
    if "content-length:" in headers:  # even beside Transfer-Encoding, as requests sends it
        length = int(headers.split("content-length:")[1].split("\r\n")[0])
        while len(body) < length:
            body += conn.recv(65536)
    elif "transfer-encoding: chunked" in headers:
        while not body.endswith(b"0\r\n\r\n"):
            body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class Server:
    """A TCP server on 127.0.0.1 whose connections `handle(conn, server)` serves, each on a
    thread; the requests it read are kept in `seen`."""

    def __init__(self, handle: Callable[[socket.socket, Server], None]) -> None:
        self.seen: list[bytes] = []
        self._handle = handle
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._handle(conn, self)
            except OSError:
                pass

    def read(self, conn: socket.socket) -> bytes:
        request = read_request(conn)
        if request:
            self.seen.append(request)
        return request

    def close(self) -> None:
        self._sock.close()


def answers_ok(conn: socket.socket, server: Server) -> None:
    while server.read(conn):  # keep-alive: one answer per request
        conn.sendall(OK)


def answers_nothing(conn: socket.socket, server: Server) -> None:
    server.read(conn)
    time.sleep(3)


def hangs_up(conn: socket.socket, server: Server) -> None:
    server.read(conn)


def sends_part_of_the_body(conn: socket.socket, server: Server) -> None:
    server.read(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


def stalls_in_the_body(conn: socket.socket, server: Server) -> None:
    sends_part_of_the_body(conn, server)
    time.sleep(3)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket, Server], None]], Server]]:
    servers: list[Server] = []

    def start(handle: Callable[[socket.socket, Server], None]) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def both(url: str) -> dict[str, RequestsTransport]:
    """The transport the clients used before and the one they use now, set up alike."""
    return {
        "requests": RequestsTransport(use_env_settings=False, **TIMEOUTS),
        "urllib3": StorageTransport(url, "table", "t", **TIMEOUTS),
    }


BODIES: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "no body, GET": lambda: ("GET", {}),
    "no body, DELETE": lambda: ("DELETE", {"headers": {"x-ms-version": "2019-02-02"}}),
    "empty bytes": lambda: ("PUT", {"content": b""}),
    "bytes": lambda: ("POST", {"json": {"a": 1}}),
    "text": lambda: ("PATCH", {"content": "{'é': 1}", "headers": {"Accept": "text/plain"}}),
    "a file": lambda: ("PUT", {"content": io.BytesIO(b"abcdef")}),
    "a generator": lambda: ("PUT", {"content": (part for part in [b"ab", b"cd", b"ef"])}),
    "a generator, length given": lambda: (
        "PUT",
        {"content": (part for part in [b"ab", b"cd"]), "headers": {"Content-Length": "4"}},
    ),
    # handed to RequestsTransport.send itself
    "form fields": lambda: ("POST", {"data": {"a": "1", "b": "é"}}),
    "files": lambda: ("POST", {"files": {"f": ("f.txt", b"abc", "text/plain")}}),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_the_request_on_the_wire_is_the_one_requests_sent(
    case: str, serve: Callable[..., Server]
) -> None:
    # given
    server = serve(answers_ok)
    # when
    answers = {}
    for which, transport in both(server.url).items():
        method, options = BODIES[case]()
        url = f"{server.url}/acct/t(PartitionKey='a%20b',RowKey='%C3%A9')?$filter=x%20eq%201"
        with transport:
            answers[which] = transport.send(HttpRequest(method, url, **options))
    # then
    old, new = server.seen
    if case == "files":  # the multipart boundary is random
        old, new = (request.split(b"boundary=")[0] for request in (old, new))
    assert new == old
    for answer in answers.values():
        assert (answer.status_code, answer.reason, answer.text()) == (200, "OK", "ok\n")
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    "handle, stream, expected",
    [
        (answers_nothing, False, ServiceResponseTimeoutError),
        (hangs_up, False, ServiceResponseError),
        (sends_part_of_the_body, False, IncompleteReadError),
        (sends_part_of_the_body, True, IncompleteReadError),
        # requests reports a timeout in the middle of a body as a failed request
        (stalls_in_the_body, False, ServiceRequestError),
        (stalls_in_the_body, True, ServiceResponseTimeoutError),
    ],
)
def test_each_failure_becomes_the_error_requests_transport_raised(
    handle: Callable[[socket.socket, Server], None],
    stream: bool,
    expected: type[Exception],
    serve: Callable[..., Server],
) -> None:
    # given
    server = serve(handle)
    raised = {}
    for which, transport in both(server.url).items():
        # when
        with transport, pytest.raises(Exception) as caught:
            response = transport.send(HttpRequest("GET", f"{server.url}/x"), stream=stream)
            b"".join(response.iter_bytes())
        raised[which] = caught.type
    # then
    assert raised == {"requests": expected, "urllib3": expected}


def test_a_closed_port_is_a_failed_request() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for transport in both(url).values():
        with transport, pytest.raises(ServiceRequestError) as caught:
            transport.send(HttpRequest("GET", f"{url}/x"))
        assert type(caught.value) is ServiceRequestError


def test_a_closed_transport_refuses_to_send(serve: Callable[..., Server]) -> None:
    server = serve(answers_ok)
    transport = StorageTransport(server.url, "table", "t")
    with transport:
        assert transport.send(HttpRequest("GET", f"{server.url}/x")).status_code == 200
    with pytest.raises(ValueError, match="already been closed"):
        transport.send(HttpRequest("GET", f"{server.url}/x"))


def test_the_proxy_is_the_environments_when_the_transport_was_made(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a proxy for http, and NO_PROXY naming the server itself
    proxy = serve(answers_ok)
    for name in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    proxied = StorageTransport("http://storage.invalid/acct", "queue", "q")
    direct = StorageTransport(f"{proxy.url}/acct", "queue", "q")
    monkeypatch.delenv("HTTP_PROXY")  # read once: a later change is not seen
    # when
    with proxied, direct:
        proxied.send(HttpRequest("GET", "http://storage.invalid/acct/q?a=1"))
        direct.send(HttpRequest("GET", f"{proxy.url}/acct/q"))
    # then
    lines = [request.split(b"\r\n")[0] for request in proxy.seen]
    assert lines == [b"GET http://storage.invalid/acct/q?a=1 HTTP/1.1", b"GET /acct/q HTTP/1.1"]


def test_tls_is_verified_with_the_ca_bundle_the_environment_names(
    tmp_path: Path, serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a server whose certificate only the bundle in REQUESTS_CA_BUNDLE vouches for
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def answers_over_tls(conn: socket.socket, server: Server) -> None:
        answers_ok(context.wrap_socket(conn, server_side=True), server)

    url = f"https://127.0.0.1:{serve(answers_over_tls).port}"
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    trusting = StorageTransport(url, "container", "c")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    default = StorageTransport(url, "container", "c")
    # when / then
    with trusting, default:
        assert trusting.send(HttpRequest("GET", f"{url}/x")).status_code == 200
        with pytest.raises(ServiceRequestError):
            default.send(HttpRequest("GET", f"{url}/x"))


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in `folder`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# -- the clients, against Azurite ------------------------------------------------------------------


def unique(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10]


def test_a_5_mb_blob_comes_back_byte_for_byte_streamed(services_env: Services) -> None:
    # given
    container = services_env.storage.container(unique("tx"))
    data = os.urandom(5 * 1024 * 1024 + 7)
    container.upload_blob("big", data)
    # when
    whole = container.download_blob("big").readall()
    chunked = b"".join(container.download_blob("big").chunks())
    part = container.download_blob("big", offset=1000, length=2_000_000).readall()
    # then
    assert whole == data
    assert chunked == data
    assert part == data[1000:2_001_000]


def test_a_table_batch_commits_all_or_nothing(services_env: Services) -> None:
    # given
    table = services_env.storage.table(unique("tx"))
    rows = [{"PartitionKey": "p", "RowKey": str(i), "n": i} for i in range(5)]
    # when
    table.submit_transaction([("create", row) for row in rows])
    with pytest.raises(TableTransactionError):
        table.submit_transaction(
            [("create", {"PartitionKey": "p", "RowKey": "9"}), ("create", rows[0])]
        )
    # then
    found = sorted(int(e["RowKey"]) for e in table.query_entities("PartitionKey eq 'p'"))
    assert found == [0, 1, 2, 3, 4]


def test_each_request_is_counted_once_under_its_client(services_env: Services) -> None:
    # given
    name = unique("tx")
    table = services_env.storage.table(name)
    queue = services_env.storage.queue(name)
    # when
    with calls.counted() as tally:
        table.create_entity({"PartitionKey": "p", "RowKey": "r"})
        table.get_entity("p", "r")
        queue.send_message("hello")
    # then
    assert tally.calls == [("POST", "table", name), ("GET", "table", name), ("POST", "queue", name)]


def test_a_dead_endpoint_fails_fast_after_the_clients_retries(
    unreachable_storage_env: None,
) -> None:
    # given
    queue = Storage(get_settings().storage).queue_unchecked("nothere")
    started = time.monotonic()
    # when
    with calls.counted() as tally, pytest.raises(ServiceRequestError):
        queue.peek_messages()
    # then: the first try and the client's two retries, refused at once
    assert tally.calls == [("GET", "queue", "nothere")] * 3
    assert time.monotonic() - started < 2


def test_storage_that_never_answers_is_given_up_after_the_read_timeout(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a storage endpoint that takes each request and never answers, and a short read
    # timeout (the clients' own timeout keywords never reach a transport handed to them)
    server = serve(answers_nothing)
    monkeypatch.setattr(clients, "READ_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setenv(
        "AzureWebJobsStorage",
        f"DefaultEndpointsProtocol=http;AccountName={clients.DEV_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};QueueEndpoint={server.url}/{clients.DEV_ACCOUNT};",
    )
    get_settings.cache_clear()
    queue = Storage(get_settings().storage).queue_unchecked("silent")
    started = time.monotonic()
    # when
    with pytest.raises(ServiceResponseTimeoutError):
        queue.peek_messages()
    # then the first try and the client's two retries each waited the read timeout, not 300 s
    assert len(server.seen) == 3
    assert time.monotonic() - started < 2.5
    get_settings.cache_clear()
