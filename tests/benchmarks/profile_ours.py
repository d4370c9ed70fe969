"""Where ours spends a request: FastAPI's ``Depends`` machinery against our own code.

``python tests/benchmarks/profile_ours.py [--requests 3000] [--runs 7]`` (ours with ``MemoryStore``).

1. Timings without a profiler, interleaved in one process (medians of runs): ``/bare``, ``/read`` and
   ``/write`` of plain FastAPI, of plain FastAPI with one trivial dependency on ``/read`` and
   ``/write`` (``plain-depends``), and of ours. The differences split the overhead into FastAPI's
   share and ours.
2. cProfile of ours ``/read`` and ``/write``: self time by package, and the cumulative time per request
   of our functions and of the pydantic calls they make (profiled times are inflated; read the shares).
3. The Python bytecodes one request runs, by package, for plain FastAPI with one trivial dependency
   and for ours: a count that no timer's noise touches (C code, pydantic-core's included, is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import time
from collections import Counter
from types import FrameType
from typing import Any

from apps import build
from asgi_driver import Browser, Client


async def visitor(system: str) -> Browser:
    """A started app of ``system`` and its visitor: logged in to ours, or, for the plain floors, sent
    a Cookie header of the same size."""
    client = Client(build(system).app)
    await client.start()
    browser = Browser(client)
    if system.startswith("plain"):
        browser.jar.set_raw("session", "x" * 96)
    else:
        await browser.login()
    return browser


async def interleaved(
    cases: list[tuple[str, Browser, str]], runs: int, requests: int, warmup: int = 300
) -> dict[str, float]:
    """µs per request of each ``(label, browser, path)``: median of ``runs`` runs, the cases taken in
    turn within a run (in reverse order every other run), so drift hits them all alike."""
    for _, browser, path in cases:
        for _ in range(warmup):
            await browser.visit(path)
    found: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for run in range(runs):
        for label, browser, path in cases if run % 2 == 0 else cases[::-1]:
            gc.collect()
            started = time.perf_counter_ns()
            for _ in range(requests):
                await browser.visit(path)
            found[label].append((time.perf_counter_ns() - started) / requests / 1000)
    return {label: statistics.median(values) for label, values in found.items()}


async def timings(runs: int, requests: int) -> dict[str, float]:
    systems = ("plain", "plain-depends", "ours-memory")
    browsers = {name: await visitor(name) for name in systems}
    cases = [
        (f"{name} {path}", browsers[name], path)
        for name in systems
        for path in ("/bare", "/read", "/write")
    ]
    return await interleaved(cases, runs, requests)


def _area(filename: str, name: str) -> str:
    if "fastapi_sessions" in filename:
        return "ours (fastapi_sessions)"
    if "pydantic" in filename or "pydantic_core" in name:
        return "pydantic / pydantic-core"
    if "/fastapi/" in filename:
        return "fastapi"
    if "/starlette/" in filename:
        return "starlette"
    if "asyncio" in filename or "anyio" in filename:
        return "asyncio / anyio"
    if "asgi_driver" in filename or "apps/" in filename:
        return "bench driver and route bodies"
    return "other (builtins, stdlib)"


_WATCH = [
    ("fastapi/dependencies/utils.py", "solve_dependencies"),
    ("fastapi_sessions/manager.py", "get_session"),
    ("fastapi_sessions/engine.py", "load"),
    ("fastapi_sessions/signing.py", "verify"),
    ("fastapi_sessions/stores/memory.py", "load"),
    ("fastapi_sessions/codec.py", "decode"),
    ("fastapi_sessions/codec.py", "snapshot"),
    ("fastapi_sessions/hook.py", "send"),
    ("fastapi_sessions/hook.py", "_with_vary"),
    ("fastapi_sessions/engine.py", "settled"),
    ("fastapi_sessions/hook.py", "_start_http"),
    ("fastapi_sessions/engine.py", "commit"),
    ("fastapi_sessions/engine.py", "_update"),
    ("fastapi_sessions/stores/memory.py", "update"),
    ("~", "<method 'validate_json'"),
    ("~", "<method 'to_python'"),
    ("~", "<built-in method pydantic_core._pydantic_core.to_json>"),
]


async def profile(path: str, requests: int) -> str:
    browser = await visitor("ours-memory")
    for _ in range(300):
        await browser.visit(path)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        await browser.visit(path)
    profiler.disable()
    stats: Any = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values())
    areas: dict[str, float] = {}
    for (filename, _, name), entry in stats.items():
        area = _area(filename, name)
        areas[area] = areas.get(area, 0.0) + entry[2]
    lines = [
        f"cProfile, ours MemoryStore {path}: {total / requests * 1e6:.1f} µs/request under the profiler"
    ]
    lines += ["  self time by package:"]
    for area, spent in sorted(areas.items(), key=lambda item: -item[1]):
        lines.append(f"    {area:32s} {spent / requests * 1e6:7.1f} µs  {spent / total:5.1%}")
    lines += ["  cumulative time per request (calls per request):"]
    for file_part, name in _WATCH:
        for (filename, _, function), entry in stats.items():
            label = function if file_part == "~" else f"{file_part.rsplit('/', 1)[-1]}:{function}"
            if file_part in filename and (
                function == name or (file_part == "~" and function.startswith(name))
            ):
                calls, cumulative = entry[1], entry[3]
                lines.append(
                    f"    {label[:70]:70s} {cumulative / requests * 1e6:7.1f} µs  ({calls / requests:g})"
                )
    await browser.client.stop()
    return "\n".join(lines)


def _package(filename: str) -> str:
    if "/fastapi_sessions/" in filename:
        return "fastapi_sessions"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/")[0]
    if "/benchmarks/" in filename:
        return "bench driver and apps"
    return "stdlib and other"


async def bytecodes(system: str, path: str) -> Counter[str]:
    """The bytecodes one request to ``system`` runs, by package (after a warm-up)."""
    browser = await visitor(system)
    for _ in range(50):
        await browser.visit(path)
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        package = _package(frame.f_code.co_filename)

        def each(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[package] += 1
            return each

        return each

    sys.settrace(trace)
    try:
        await browser.visit(path)
    finally:
        sys.settrace(None)
    await browser.client.stop()
    return counts


async def main(runs: int, requests: int) -> None:
    medians = await timings(runs, requests)
    print(f"Timings without a profiler (median of {runs} runs x {requests} requests), µs/request:")
    for label, value in medians.items():
        print(f"  {label:20s} {value:7.1f}")
    print("Split of ours over plain FastAPI (same route):")
    for path in ("/read", "/write"):
        depends = medians[f"plain-depends {path}"] - medians[f"plain {path}"]
        ours = medians[f"ours-memory {path}"] - medians[f"plain-depends {path}"]
        print(
            f"  {path}: FastAPI resolving one trivial dependency {depends:+.1f} µs, our code {ours:+.1f} µs"
        )
    hook = medians["ours-memory /bare"] - medians["plain /bare"]
    print(f"  /bare: our hook on a request that never asks for the session {hook:+.1f} µs")
    print()
    for path in ("/read", "/write"):
        print(await profile(path, requests))
        print()
    for path in ("/read", "/write"):
        for system in ("plain-depends", "ours-memory"):
            counts = await bytecodes(system, path)
            top = ", ".join(f"{package} {count}" for package, count in counts.most_common(6))
            print(f"Bytecodes of one {path} request, {system}: {sum(counts.values())} ({top})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.requests))
