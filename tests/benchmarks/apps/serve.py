"""The app uvicorn serves: ``BENCH_SYSTEM`` names the system, ``BENCH_REDIS_URL`` its Redis."""

from __future__ import annotations

import os

from apps import build

app = build(os.environ["BENCH_SYSTEM"], os.environ.get("BENCH_REDIS_URL") or None).app
