"""The HTTP transport of the storage clients: azure-core's requests transport, minus most of
`requests`.

Every Table, Queue and Blob request leaves the process through `StorageTransport.send`, which is
azure-core's `RequestsTransport.send`: it reads the timeouts, calls its session's `request`, and
turns the answer into azure-core's response classes and any failure into azure-core's errors
(the retry policies tell those apart by type). A plain `requests.Session` would then spend a
fifth to a quarter of the call's client CPU on work storage does not need: merging session and
environment settings, preparing the request a second time, hooks and cookies. The session here,
`_Session`, hands the request to a urllib3 connection pool itself and wraps urllib3's answer in
a `requests.Response`, as requests' adapter does, so everything above it is unchanged.

What `requests` did with `trust_env` off, `_Session` does too:

- the environment's proxy (and `NO_PROXY`) and CA bundle settings, read once for the client's
  URL; the CA bundle (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE) now applies, where the request's
  `verify=True` used to override it with requests' own bundle;
- the session's default headers (User-Agent, Accept, Accept-Encoding, Connection), the URL
  requoted, and the body framed alike (Content-Length, or chunked when a stream's length is
  unknown); no redirects and no urllib3 retries (azure-core's retry policy retries);
- keep-alive connections, up to `POOL_MAXSIZE` kept per host (requests kept 10);
- a body not asked for as a stream read at once, and each urllib3 failure raised as the
  `requests` exception its adapter raised, for `RequestsTransport.send` to translate.

Left out: cookies (storage sets none). A request the fast path does not cover (form fields,
files, per-request proxies, TLS settings or hooks, a SOCKS proxy) goes through
`requests.Session.request` itself, with the same proxy and CA settings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from io import UnsupportedOperation
from typing import Any, cast

import requests
import urllib3
from azure.core.pipeline.transport import RequestsTransport
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_encoding_from_headers,
    prepend_scheme_if_needed,
    requote_uri,
    select_proxy,
    super_len,
)
from urllib3.exceptions import (
    ClosedPoolError,
    InvalidHeader,
    LocationValueError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from shared.storage import calls

# Connections kept per host: a client is shared by up to ~32 threads. A request beyond the
# limit still gets a connection, which is closed afterwards instead of kept.
POOL_MAXSIZE = 32
# What RequestsTransport's adapter uses: no retries, no redirects, statuses are not errors.
_NO_RETRIES = Retry(total=False, redirect=False, raise_on_status=False)
# The keywords RequestsTransport.send passes; any other goes to requests (which refuses it).
_KEYWORDS = frozenset(
    (
        "headers",
        "data",
        "files",
        "verify",
        "cert",
        "timeout",
        "allow_redirects",
        "proxies",
        "stream",
    )
)
_UNSUPPORTED = object()


class StorageTransport(RequestsTransport):
    """A sync azure-core transport for one storage client (`url`), safe to share between
    threads; each request is counted (`shared.storage.calls`) under the client's `kind` and
    `name`. Keywords are RequestsTransport's (`connection_timeout`, `read_timeout`, ...)."""

    def __init__(self, url: str, kind: str, name: str, **kwargs: Any) -> None:
        session = _Session(url)
        super().__init__(session=session, use_env_settings=False, **kwargs)
        # As RequestsTransport.open does for a session of its own: trust_env off, and requests'
        # adapters (used only by the requests handed over) without retries.
        self._init_session(session)
        self._kind = kind
        self._name = name

    def send(self, request: Any, **kwargs: Any) -> Any:
        calls.record(request.method, self._kind, self._name)
        return super().send(request, **kwargs)


class _Session(requests.Session):
    """A requests session whose `request` sends the requests storage makes through urllib3
    directly, doing what `Session.request` and `HTTPAdapter.send` would; any other request is
    requests' own."""

    def __init__(self, url: str) -> None:
        super().__init__()
        # What a session with trust_env on finds for this URL on every request: proxies from
        # *_PROXY unless NO_PROXY covers the URL, and REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE.
        found = self.merge_environment_settings(url, {}, None, None, None)
        self.proxies.update(found["proxies"])
        self.verify = found["verify"]
        self._tls = _tls_settings(self.verify)
        self._direct = urllib3.PoolManager(maxsize=POOL_MAXSIZE, block=False, **self._tls)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def request(  # type: ignore[override]
        self, method: str, url: str, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("verify") is True:  # verify, with the bundle the environment names
            kwargs["verify"] = self.verify
        manager = self._manager(url)
        body = _body(kwargs.get("data"), kwargs.get("files"))
        timeout = kwargs.get("timeout")
        if (
            manager is None
            or body is _UNSUPPORTED
            or not kwargs.keys() <= _KEYWORDS
            or kwargs.get("allow_redirects", True)
            or kwargs.get("proxies")
            or kwargs.get("verify", self.verify) != self.verify
            or kwargs.get("cert") is not None
            or not (isinstance(timeout, tuple) and len(timeout) == 2)
        ):
            return super().request(method, url, **kwargs)

        method = method.upper()
        url = requote_uri(url)
        headers = CaseInsensitiveDict(self.headers)
        headers.update(kwargs.get("headers") or {})
        chunked = _frame(method, body, headers)
        try:
            raw = manager.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=_NO_RETRIES,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                chunked=chunked,
            )
        except Exception as err:
            error = _as_requests_error(err)
            if error is None:
                raise  # as requests' adapter lets it through (NewConnectionError among them)
            raise error from err
        response = _response(url, cast(urllib3.HTTPResponse, raw))
        if not kwargs.get("stream"):
            response.content  # noqa: B018 -- reads the body, as Session.send does
        return response

    def close(self) -> None:
        super().close()
        self._direct.clear()  # closes idle connections; busy ones are closed when returned
        with self._lock:
            for manager in self._proxied.values():
                manager.clear()
            self._proxied.clear()

    def _manager(self, url: str) -> urllib3.PoolManager | None:
        """The pool manager for `url` (through its proxy, if any); None for a SOCKS proxy."""
        proxy = select_proxy(url, self.proxies) if self.proxies else None
        if not proxy:
            return self._direct
        proxy = prepend_scheme_if_needed(proxy, "http")
        if proxy.lower().startswith("socks"):
            return None
        with self._lock:
            manager = self._proxied.get(proxy)
            if manager is None:
                user, password = get_auth_from_url(proxy)
                manager = urllib3.ProxyManager(
                    proxy,
                    proxy_headers=(
                        urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
                        if user
                        else None
                    ),
                    maxsize=POOL_MAXSIZE,
                    block=False,
                    **self._tls,
                )
                self._proxied[proxy] = manager
        return manager


def _tls_settings(verify: Any) -> dict[str, Any]:
    """The urllib3 pool settings requests' adapter derives from `verify` (True: its bundle)."""
    if not verify:
        return {"cert_reqs": "CERT_NONE"}
    location = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
    where = "ca_cert_dir" if os.path.isdir(location) else "ca_certs"
    return {"cert_reqs": "CERT_REQUIRED", where: location}


def _body(data: Any, files: Any) -> Any:
    """The body as requests would send it: None, str, bytes or a stream or iterable;
    `_UNSUPPORTED` for files or form fields (requests encodes those)."""
    if files or isinstance(data, (Mapping, list, tuple)):
        return _UNSUPPORTED
    if data is None or isinstance(data, (str, bytes)):
        return data or None  # requests sends an empty body as none
    return data


def _frame(method: str, body: Any, headers: CaseInsensitiveDict[Any]) -> bool:
    """Sets Content-Length (or Transfer-Encoding) as requests' `prepare_body` does; whether
    urllib3 must send the body in chunks, as requests' adapter decides."""
    if body is None:
        if method not in ("GET", "HEAD") and headers.get("Content-Length") is None:
            headers["Content-Length"] = "0"
        return False
    if isinstance(body, (str, bytes)):
        headers["Content-Length"] = str(super_len(body))  # of str: its UTF-8 bytes
    else:  # a stream or iterable: its length if it can tell, else chunked
        try:
            length = super_len(body)
        except (TypeError, AttributeError, UnsupportedOperation):
            length = 0
        if length:
            headers["Content-Length"] = str(length)
        else:
            headers["Transfer-Encoding"] = "chunked"
    return "Content-Length" not in headers


def _response(url: str, raw: urllib3.HTTPResponse) -> requests.Response:
    """urllib3's response as requests' adapter wraps it (`build_response`), cookies aside."""
    raw.enforce_content_length = True
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = raw
    response.reason = cast(str, raw.reason)  # None, as requests keeps it, if none came
    response.url = url
    return response


def _as_requests_error(err: Exception) -> Exception | None:
    """The requests exception `HTTPAdapter.send` raises for a urllib3 error (retries are off,
    so there is no MaxRetryError); None for the errors it lets through as they are."""
    if isinstance(err, (ProtocolError, OSError, ClosedPoolError)):
        return requests.ConnectionError(err)
    if isinstance(err, ProxyError):
        return requests.exceptions.ProxyError(err)
    if isinstance(err, SSLError):
        return requests.exceptions.SSLError(err)
    if isinstance(err, ReadTimeoutError):
        return requests.ReadTimeout(err)
    if isinstance(err, InvalidHeader):
        return requests.exceptions.InvalidHeader(err)
    if isinstance(err, LocationValueError):  # requests refuses such a URL before sending
        return requests.exceptions.InvalidURL(err)
    if isinstance(err, ValueError):  # http.client refuses a malformed header; requests did first
        return requests.exceptions.InvalidHeader(err)
    return None
