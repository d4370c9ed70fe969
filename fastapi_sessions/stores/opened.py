"""What an ``EncryptedStore`` remembers of the records it opened: bounded, and only ever a shortcut.

Per store key: the record's sealed binding, the record id inside it, and pairs of (ciphertext,
plaintext) of its values. A pair is a fact that never goes stale: a ciphertext, sealed for that record
id and field name, always opens to that plaintext. So a load that finds the same binding and the same
ciphertext as remembered can take the plaintext without decrypting again, and anything forgotten
(evicted, or never seen in this process) only costs a decryption. A session read again and again,
the common case, costs its reads no cryptography at all once its values are remembered.

Plaintexts are held in the process that holds the keys anyway: nothing here is "at rest".
"""

from __future__ import annotations

from .base import SessionRecord

__all__ = ["Known", "OpenedRecords"]

MAX_RECORDS = 16_384
"""Records remembered at most (the oldest go first): a write needs its record's id, and the request
that writes loaded the record moments before, so this must span the requests in flight."""
MAX_BYTES = 8 * 1024 * 1024
"""Bytes of values (ciphertexts and plaintexts) remembered at most, over all records."""


class Known:
    """One record as this process knows it."""

    __slots__ = ("binding", "opened", "record_id", "size", "values")

    def __init__(self, binding: bytes, record_id: bytes) -> None:
        self.binding = binding
        """The hidden field's stored value: the record id, sealed for the store key."""
        self.record_id = record_id
        self.values: dict[str, tuple[bytes, bytes]] = {}
        """Per field name, a ciphertext seen or written, and its plaintext."""
        self.opened: tuple[bytes, SessionRecord] | None = None
        """The wrapped store's document of the whole record as last read, and the record it opened
        to (without metadata): a read that finds that very document again needs nothing else."""
        self.size = 0
        """Bytes held in ``values`` and ``opened``."""


class OpenedRecords:
    """Known records by store key, within ``max_records`` records and ``max_bytes`` of values."""

    def __init__(self, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._records: dict[str, Known] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def size(self) -> int:
        """Bytes of values remembered now."""
        return self._bytes

    def get(self, key: str) -> Known | None:
        return self._records.get(key)

    def add(self, key: str, binding: bytes, record_id: bytes) -> Known:
        """Remember the record under ``key`` (in place of what was known of that key)."""
        self.forget(key)
        known = self._records[key] = Known(binding, record_id)
        self._trim()
        return known

    def note(self, key: str, known: Known, name: str, sealed: bytes, plain: bytes) -> None:
        """Remember that ``sealed``, the field ``name`` of ``known``, opens to ``plain``; ignored when
        ``known`` is no longer what is remembered of ``key`` (it was forgotten meanwhile)."""
        if self._records.get(key) is not known:
            return
        size = len(sealed) + len(plain)
        old = known.values.get(name)
        if old is not None:
            size -= len(old[0]) + len(old[1])
        known.values[name] = (sealed, plain)
        known.size += size
        self._bytes += size
        if self._bytes > self.max_bytes:
            self._trim()

    def keep_opened(self, key: str, known: Known, document: bytes, record: SessionRecord) -> None:
        """Remember that the stored ``document`` of ``known`` opens to ``record``."""
        if self._records.get(key) is not known:
            return
        size = len(document) + len(record.document or b"")
        if known.opened is not None:
            size -= len(known.opened[0]) + len(known.opened[1].document or b"")
        known.opened = (document, record)
        known.size += size
        self._bytes += size
        if self._bytes > self.max_bytes:
            self._trim()

    def drop(self, key: str, known: Known, name: str) -> None:
        """Forget the value of the field ``name`` of ``known`` (the field was removed)."""
        old = known.values.pop(name, None) if self._records.get(key) is known else None
        if old is not None:
            size = len(old[0]) + len(old[1])
            known.size -= size
            self._bytes -= size

    def forget(self, key: str) -> None:
        known = self._records.pop(key, None)
        if known is not None:
            self._bytes -= known.size

    def _trim(self) -> None:
        """Forget the oldest records until both bounds hold (a record too large alone goes too)."""
        records = self._records
        while records and (len(records) > self.max_records or self._bytes > self.max_bytes):
            self.forget(next(iter(records)))
