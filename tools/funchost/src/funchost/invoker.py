"""Call a user function the way the Python worker does.

Sync functions run in a thread pool, async ones on the host's event loop. Inputs are
decoded with the converters of `azure.functions.meta`; `func.Out` values and queue
`$return` values are handed to the output sinks once the function has succeeded.

The pool's threads block SIGINT, and so do the processes they start (`shutdown`): Ctrl-C is
the host's to handle. An invocation cancelled when the host stops is not an outcome: the
cancellation goes on to the trigger, which leaves its message to come back; a sync function
cut off that way still runs in its thread (`threads_busy`) until the process exits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import azure.functions as func
from azure.functions import meta

from .indexing import Binding, FunctionSpec
from .shutdown import block_interrupts

log = logging.getLogger("funchost")
T = TypeVar("T")


def decode(
    binding_type: str, datum: meta.Datum, metadata: dict[str, meta.Datum] | None = None
) -> Any:
    """Decode a payload with the library's converter for that binding type."""
    converter = meta.get_binding_registry().get(binding_type)
    if converter is None:
        raise ValueError(f"no converter for binding type {binding_type!r}")
    return converter.decode(datum, trigger_metadata=metadata)


def encode(binding_type: str, value: Any) -> meta.Datum:
    """Encode an output value with the library's converter for that binding type."""
    converter = meta.get_binding_registry().get(binding_type)
    if converter is None:
        raise ValueError(f"no converter for binding type {binding_type!r}")
    datum: meta.Datum = converter.encode(value, expected_type=type(value))
    return datum


class OutputSink(Protocol):
    """Writes the value a function gave an output binding (a queue, say)."""

    async def write(self, binding: Binding, datum: meta.Datum) -> None: ...


class _Out(func.Out[T], Generic[T]):
    def __init__(self) -> None:
        self._value: T | None = None
        self.is_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.is_set = True

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class _Context(func.Context):
    def __init__(self, invocation_id: str, spec: FunctionSpec, app_dir: str) -> None:
        self._invocation_id = invocation_id
        self._name = spec.name
        self._dir = app_dir
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return self._dir

    @property
    def trace_context(self) -> Any:
        return None  # no distributed tracing in funchost

    @property
    def retry_context(self) -> Any:
        return None


@dataclass
class Outcome:
    """What one invocation gave back."""

    invocation_id: str
    ok: bool
    value: Any = None
    error: BaseException | None = None
    error_text: str = ""
    duration_ms: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)


class Invoker:
    """Runs functions, logs one line per invocation and writes their outputs."""

    def __init__(self, app_dir: str, threads: int = 32) -> None:
        self.app_dir = app_dir
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="funchost-fn", initializer=block_interrupts
        )
        self.sinks: dict[str, OutputSink] = {}
        self.in_flight = 0
        self._busy = 0  # sync functions running in a thread right now
        self._busy_lock = threading.Lock()
        self._idle = asyncio.Event()
        self._idle.set()

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        inputs: dict[str, Any] | None = None,
        *,
        reason: str = "",
    ) -> Outcome:
        """Invoke `spec` with its trigger parameter set to `trigger_value`.

        Never raises for the function's own errors: they come back in the Outcome.
        """
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {spec.trigger.name: trigger_value}
        kwargs.update(inputs or {})
        outs = {b.name: _Out[Any]() for b in spec.outputs}
        kwargs.update(outs)
        if spec.wants_context:
            kwargs["context"] = _Context(invocation_id, spec, self.app_dir)
        self.in_flight += 1
        self._idle.clear()
        started = time.perf_counter()
        outcome = Outcome(invocation_id=invocation_id, ok=True)
        try:
            if spec.is_async:
                outcome.value = await spec.func(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                outcome.value = await loop.run_in_executor(
                    self.executor, functools.partial(self._in_thread, spec.func, kwargs)
                )
            await self._write_outputs(spec, outs, outcome.value)
        except asyncio.CancelledError:  # the host is stopping: not an outcome
            log.warning(
                "Abandoned 'Functions.%s' (Id=%s) after %.0fms: the host is stopping",
                spec.name,
                invocation_id,
                (time.perf_counter() - started) * 1000,
            )
            raise
        except Exception as exc:  # the function's failure is an outcome, not a host crash
            outcome.ok = False
            outcome.error = exc
            outcome.error_text = "".join(traceback.format_exception(exc))
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        status = "Succeeded" if outcome.ok else "Failed"
        log.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)%s",
            spec.name,
            status,
            invocation_id,
            outcome.duration_ms,
            f" Reason='{reason}'" if reason else "",
        )
        if not outcome.ok:
            log.error("Function '%s' failed:\n%s", spec.name, outcome.error_text.rstrip())
        return outcome

    async def _write_outputs(
        self, spec: FunctionSpec, outs: dict[str, _Out[Any]], value: Any
    ) -> None:
        pending: list[tuple[Binding, Any]] = [
            (b, outs[b.name].get()) for b in spec.outputs if outs[b.name].is_set
        ]
        ret = spec.return_binding
        if ret is not None and ret.type in self.sinks and value is not None:
            pending.append((ret, value))
        for binding, item in pending:
            sink = self.sinks.get(binding.type)
            if sink is None:
                raise RuntimeError(f"no output sink for binding type {binding.type!r}")
            await sink.write(binding, encode(binding.type, item))

    def _in_thread(self, fn: Any, kwargs: dict[str, Any]) -> Any:
        block_interrupts()  # again: a library may have unblocked it (see shutdown)
        with self._busy_lock:
            self._busy += 1
        try:
            return fn(**kwargs)
        finally:
            with self._busy_lock:
                self._busy -= 1

    @property
    def threads_busy(self) -> int:
        """Sync functions running in a thread now, cancelled invocations' included."""
        with self._busy_lock:
            return self._busy

    async def wait_idle(self, timeout: float, cut_short: asyncio.Event | None = None) -> bool:
        """Wait until no invocation is running; False if `timeout` passed, or `cut_short` was
        set, first."""
        waits = {asyncio.ensure_future(self._idle.wait())}
        if cut_short is not None:
            waits.add(asyncio.ensure_future(cut_short.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self._idle.is_set()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def utc_now() -> datetime:
    return datetime.now(UTC)
