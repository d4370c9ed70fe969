"""A bounded HTTP/1.1 load generator, for machines without ``wrk``.

``python tests/benchmarks/loadgen.py --port P --path /read [--cookie 'a=b'] --duration 5 --connections 16``
keeps ``connections`` keep-alive connections to 127.0.0.1 busy for ``duration`` seconds, one request
in flight on each, and prints requests/s and latency percentiles as JSON. Raw asyncio streams: no
HTTP client library in the measured loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def _connection(
    port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors.append(int(head[9:12]))
    finally:
        writer.close()


async def run(
    port: int, path: str, cookie: str | None, duration: float, connections: int
) -> dict[str, float]:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: */*"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.wait_for(
        asyncio.gather(
            *(_connection(port, request, deadline, latencies, errors) for _ in range(connections))
        ),
        timeout=duration + 30,
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--cookie")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not 0 < args.duration <= 60:
        parser.error("--duration must be in (0, 60]")
    print(json.dumps(asyncio.run(run(args.port, args.path, args.cookie, args.duration, args.connections))))


if __name__ == "__main__":
    main()
