"""``MemoryBackend``: the shipped in-process store under the name the ``backends`` API uses."""

from __future__ import annotations

from ..stores.memory import MemoryStore

__all__ = ["MemoryBackend"]


class MemoryBackend(MemoryStore):
    """``MemoryStore`` by another name: the full store at full speed.

    It is not a ``Backend`` and goes through no adapter. Like
    ``MemoryStore`` it is for one process (development, demos, tests): each worker has its own
    sessions, and they vanish on restart. ``clear()`` removes every session it holds.
    """
