"""How ``MemoryStore`` keeps one session in a few hundred bytes: packed into a single ``bytes``.

The blob is the session's JSON document (what the model validates, handed to the engine as is, so a
read joins nothing), then each field value's length (so a write can replace one value in place), then
the metadata. Everything the sessions of one model share (names, offsets) lives once in a ``Layout``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, ItemsView, Iterator, KeysView, Mapping, ValuesView
from itertools import accumulate
from typing import Any

from .base import SessionChange, SessionMeta, SessionRecord, field_prefix, new_tuple

__all__ = ["TAIL", "Entry", "Layout", "PackedFields"]

TAIL = struct.Struct("<dd?q")  # SessionMeta: created_at, expires_at, persistent, version
_MAX_LAYOUTS = 1024  # one per distinct tuple of field names: bounded, in case names vary


class Layout:
    """What every session with the same field names shares: the names, and where their values sit."""

    __slots__ = ("index", "lengths", "names", "starts", "tail", "template")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.index = {name: index for index, name in enumerate(names)}
        prefixes = [field_prefix(name) for name in names]
        self.template = b"{" + b",".join(prefix.replace(b"%", b"%%") + b"%s" for prefix in prefixes) + b"}"
        # Where value i starts when every value before it is empty: "{", the prefixes, the commas.
        self.starts = list(accumulate((len(prefix) + 1 for prefix in prefixes), initial=0))[1:]
        self.lengths = struct.Struct(f"<{len(names)}H")
        self.tail = self.lengths.size + TAIL.size  # what follows the document in a blob

    def pack(self, values: Collection[bytes], meta: SessionMeta) -> bytes:
        """Raises ``struct.error`` when a value is too long to pack."""
        lengths = self.lengths.pack(*map(len, values))
        return self.template % tuple(values) + lengths + TAIL.pack(*meta)

    def unpack(self, blob: bytes) -> dict[str, bytes]:
        fields = {}
        offset = 0  # the lengths of the values before this one
        for name, start, length in zip(self.names, self.starts, self._lengths(blob), strict=True):
            start += offset
            fields[name] = blob[start : start + length]
            offset += length
        return fields

    def _lengths(self, blob: bytes) -> tuple[int, ...]:
        return self.lengths.unpack_from(blob, len(blob) - self.tail)

    def replace(self, blob: bytes, fields: Mapping[str, bytes], meta: SessionMeta) -> bytes:
        """``blob`` with the values of ``fields`` (all of them in this layout) replaced in place."""
        packer = self.lengths
        end = len(blob) - self.tail
        lengths = list(packer.unpack_from(blob, end))
        document = blob[:end]
        index_of, starts = self.index, self.starts
        for name, value in fields.items():
            index = index_of[name]
            start = starts[index] + sum(lengths[:index])
            document = document[:start] + value + document[start + lengths[index] :]
            lengths[index] = len(value)
        return document + packer.pack(*lengths) + TAIL.pack(*meta)


_LAYOUTS: dict[tuple[str, ...], Layout] = {}


def _layout(names: tuple[str, ...]) -> Layout:
    layout = _LAYOUTS.get(names)
    if layout is None:
        layout = Layout(names)
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[names] = layout
    return layout


class PackedFields(Mapping[str, bytes]):
    """A record's fields, cut out of its packed blob only when asked for (writes do, reads do not)."""

    __slots__ = ("_blob", "_fields", "_layout")

    def __init__(self, blob: bytes, layout: Layout) -> None:
        self._blob = blob
        self._layout = layout
        self._fields: dict[str, bytes] | None = None

    def _unpacked(self) -> dict[str, bytes]:
        fields = self._fields
        if fields is None:
            fields = self._fields = self._layout.unpack(self._blob)
        return fields

    def __getitem__(self, name: str) -> bytes:
        return self._unpacked()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._unpacked().get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.names)

    def __len__(self) -> int:
        return len(self._layout.names)

    def __contains__(self, name: object) -> bool:
        return name in self._unpacked()

    def keys(self) -> KeysView[str]:
        return self._unpacked().keys()

    def items(self) -> ItemsView[str, bytes]:
        return self._unpacked().items()

    def values(self) -> ValuesView[bytes]:
        return self._unpacked().values()


class Entry:
    """One session, packed: document, value lengths and metadata in one ``bytes``, plus its deadline.

    This is what keeps a small session at a few hundred bytes, and a read at one slice of the blob.
    """

    __slots__ = ("blob", "deadline", "layout")

    blob: bytes | SessionRecord  # the record as is when a value is too long to pack
    layout: Layout

    def __init__(self, deadline: float, record: SessionRecord) -> None:
        self.deadline = deadline  # on the monotonic clock
        self.pack(record.fields, record.meta)

    def pack(self, fields: Mapping[str, bytes], meta: SessionMeta) -> None:
        values = fields.values()
        self.layout = _layout(tuple(fields))
        try:
            self.blob = self.layout.pack(values, meta)
        except struct.error:  # a value longer than the 16-bit length field
            self.blob = SessionRecord(dict(fields), meta)

    def meta(self) -> SessionMeta:
        blob = self.blob
        if isinstance(blob, SessionRecord):
            return blob.meta
        return new_tuple(SessionMeta, TAIL.unpack_from(blob, len(blob) - TAIL.size))

    def record(self) -> SessionRecord:
        blob = self.blob
        if isinstance(blob, SessionRecord):
            return SessionRecord(dict(blob.fields), blob.meta)
        layout = self.layout
        return new_tuple(
            SessionRecord,
            (
                PackedFields(blob, layout),
                new_tuple(SessionMeta, TAIL.unpack_from(blob, len(blob) - TAIL.size)),
                blob[: len(blob) - layout.tail],
            ),
        )

    def apply(self, change: SessionChange, meta: SessionMeta) -> SessionMeta:
        """Write ``change`` over this entry, whose metadata is ``meta``; returns the new metadata."""
        blob, layout = self.blob, self.layout
        if isinstance(blob, bytes) and not change.removed and change.fields.keys() <= layout.index.keys():
            meta = meta.after(change)
            try:  # the common write: the same fields, some of them with new values
                self.blob = layout.replace(blob, change.fields, meta)
                return meta
            except struct.error:  # a value too long for its length field: packed anew below
                pass
        fields, meta, _ = self.record().applied(change)
        self.pack(fields, meta)
        return meta
