"""Ours on ``/read``, taken apart: the same app with parts of the session work cut out.

``python tests/benchmarks/ablation.py [--runs 9] [--requests 2000]`` (ours with ``MemoryStore``).

Each variant runs in a process of its own (it patches our classes), timed interleaved with plain
FastAPI and the trivial-``Depends`` app of that process (medians of runs):

- ``probe``: the hook and ``get_session`` hand over a ready session (no cookie, no store, no
  validation), and the response goes out as the app sent it;
- ``probe+vary``: the same, with ``Vary: Cookie`` added to the response;
- ``probe+settle``: the same, with the hook's real ``send`` (the snapshot comparison that settles an
  unchanged session);
- ``full``: ours as shipped.

The differences between the rows split our cost inside a request. The ``full`` process also times
``SessionEngine.load`` alone in a hot loop, for the ratio between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import timeit
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any

from profile_ours import interleaved, visitor

from fastapi_sessions.hook import Exchange, SessionHook, _with_vary
from fastapi_sessions.session import Loaded

VARIANTS = ("probe", "probe+vary", "probe+settle", "full")


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (a MemoryStore load) to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def _pass_on(self: Exchange, message: dict[str, Any]) -> Awaitable[None]:
    return self._send(message)


def _vary_only(self: Exchange, message: dict[str, Any]) -> Awaitable[None]:
    if message["type"] == "http.response.start" and self.session is not None:
        return self._send({**message, "headers": _with_vary(message)})
    return self._send(message)


async def measure(variant: str, runs: int, requests: int) -> dict[str, float]:
    ours = await visitor("ours-memory")
    browsers = {"plain": await visitor("plain"), "plain-depends": await visitor("plain-depends")}
    for floor in browsers.values():  # the floors get the very Cookie header ours gets
        floor.jar = ours.jar
    browsers[variant] = ours
    hook: Any = ours.client.app.middleware_stack
    while not isinstance(hook, SessionHook):
        hook = hook.app
    engine = hook.engine
    headers = [(b"cookie", ours.jar.header)]
    found: dict[str, float] = {}
    if variant == "full":
        hot = min(timeit.repeat(lambda: _run(engine.load(headers)), number=20_000, repeat=5))
        found["hot load"] = hot / 20_000 * 1e6
    else:
        ready = await engine.load(headers)

        async def load(_: object) -> Loaded:
            return ready

        engine.load = load
        if variant == "probe":
            Exchange.send = _pass_on  # type: ignore[method-assign]
        elif variant == "probe+vary":
            Exchange.send = _vary_only  # type: ignore[method-assign]
    cases = [(name, browser, "/read") for name, browser in browsers.items()]
    return found | await interleaved(cases, runs, requests)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--variant", choices=VARIANTS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(asyncio.run(measure(args.variant, args.runs, args.requests))))
        return
    print(f"/read, medians of {args.runs} runs x {args.requests} requests, µs over the trivial Depends:")
    for variant in VARIANTS:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--runs",
                str(args.runs),
                "--requests",
                str(args.requests),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
            cwd=Path(__file__).parent,
        )
        found = json.loads(done.stdout)
        floor = found["plain-depends"] - found["plain"]
        line = f"  {variant:14s} {found[variant] - found['plain-depends']:+6.1f}"
        line += f"   (plain {found['plain']:.1f}, Depends floor {floor:+.1f})"
        if "hot load" in found:
            line += f"   load alone in a hot loop: {found['hot load']:.1f}"
        print(line)


if __name__ == "__main__":
    main()
