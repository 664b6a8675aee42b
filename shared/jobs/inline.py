"""Runs made in a request: the request waits for them, bounded, and a run past the bound goes
on in its thread. Each pool is bounded (a burst of one kind of request cannot take another
kind's threads), and each run keeps a copy of the request's context: its log fields, its span
and its storage-call tally."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
WORKERS = 8


class InRequest:
    def __init__(self, name: str, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(self, run: Callable[..., T], *args: Any) -> Future[T]:
        """`run(*args)` in this pool, in a copy of the caller's context."""
        return self._pool.submit(contextvars.copy_context().run, run, *args)
