"""The ``fastapi-sessions`` command-line tool (also ``python -m fastapi_sessions``).

Not imported by ``fastapi_sessions`` itself: an app never loads it. One module per command or group:
``keys`` (``secret``), ``check``, ``inspection`` (``inspect``), ``revoke``, ``maintenance`` (``purge``,
``stats``, ``create-table``); ``context`` holds what they share, ``tool`` the parser and the entry
points.
"""

from __future__ import annotations

from .context import Exit
from .tool import amain, main

__all__ = ["Exit", "amain", "main"]
