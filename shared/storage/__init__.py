"""Table, Queue and Blob access: one owner of the clients, and the conditional-write helpers."""

from shared.storage.clients import Storage, StorageNotConfigured
from shared.storage.etag import (
    LOST,
    Lost,
    Written,
    get_or_none,
    if_match,
    insert_new,
    merge,
    merge_if_match,
    transact,
    until_written,
    update_row,
    write_if_unchanged,
)

__all__ = [
    "LOST",
    "Lost",
    "Storage",
    "StorageNotConfigured",
    "get_or_none",
    "if_match",
    "insert_new",
    "merge",
    "merge_if_match",
    "transact",
    "until_written",
    "update_row",
    "write_if_unchanged",
    "Written",
]
