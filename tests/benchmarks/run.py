"""The driver behind ``nox -s bench``: every figure, every system, one run; writes docs/benchmarks.

Each system runs in a subprocess of its own (``worker.py`` in-process, ``uvicorn`` end to end), so no
two session libraries are ever imported together; the PyPI ``fastapi-sessions`` (whose module is also
named ``fastapi_sessions``) runs with ``--peer-path`` first on ``PYTHONPATH``. Redis figures use a
private throwaway server (``tests/redis_support.start_server``), never a shared one. Load goes to
127.0.0.1 only; every loop is bounded and every subprocess has a timeout.

    python tests/benchmarks/run.py --peer-path DIR [--quick] [--skip-e2e] [--skip-instructions]
        [--loadgen auto|wrk|python]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))

from apps import POSTGRES_SYSTEMS, REDIS_SYSTEMS, ROUTES, SYSTEMS  # noqa: E402
from report import render  # noqa: E402

from tests.redis_support import Server, free_port, start_server  # noqa: E402

Result = dict[str, Any]


PLAIN_COOKIE = "session=" + "x" * 96
_E2E_WARMUP = 1.0  # seconds of load before each measured end-to-end run (wrk takes whole seconds)
# Figure (e): the routes counted under callgrind. plain-depends' /read is the floor of any design that
# hands the session over through Depends().
INSTRUCTION_CASES = {
    "plain": ("/bare", "/read", "/write"),
    "plain-depends": ("/read",),
    "ours-memory": ("/bare", "/read", "/write"),
    "ours-memory-encrypted": ("/read", "/write"),
    "ours-middleware": ("/bare", "/read", "/write"),
    "starlette": ("/read", "/write"),
    "starsessions-memory": ("/read", "/write"),
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.peer = str(Path(args.peer_path).resolve()) if args.peer_path else None
        self.tmp = Path(tempfile.mkdtemp(prefix="fastapi-sessions-bench-"))
        self.redis: Server | None = None
        # plain FastAPI is the floor every ratio is taken against: always measured.
        self.systems = [s for s in SYSTEMS if s == "plain" or s in (args.systems or SYSTEMS)]
        if self.peer is None and "fastapi-sessions" in self.systems:
            log("no --peer-path: skipping fastapi-sessions")
            self.systems.remove("fastapi-sessions")
        if any(s in POSTGRES_SYSTEMS for s in self.systems) and not _postgres_answers():
            log("no PostgreSQL server (BENCH_POSTGRES_URL, else the local socket): skipping ours-postgres")
            self.systems = [s for s in self.systems if s not in POSTGRES_SYSTEMS]

    # -- subprocesses ----------------------------------------------------------------------------

    def env(self, system: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SESSION_")}
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # the peers on a newer pydantic
        if system == "fastapi-sessions":
            assert self.peer is not None
            env["PYTHONPATH"] = self.peer
            env["BENCH_PEER_PATH"] = self.peer
        return env

    def worker(self, task: str, system: str, *extra: str, timeout: float = 300) -> Result:
        out = self.tmp / f"{task}-{system}.json"
        command = [sys.executable, str(HERE / "worker.py"), task, "--system", system, "--out", str(out)]
        if system in REDIS_SYSTEMS:
            assert self.redis is not None
            command += ["--redis-url", self.redis.url]
        started = time.monotonic()
        subprocess.run([*command, *extra], env=self.env(system), check=True, timeout=timeout, cwd=self.tmp)
        log(f"  {task} {system}: {time.monotonic() - started:.0f} s")
        result: Result = json.loads(out.read_text())
        return result

    def flush_redis(self) -> None:
        import redis

        assert self.redis is not None
        assert self.redis.port != 6379  # our private server only, never the shared one
        client = redis.Redis.from_url(self.redis.url)
        client.execute_command("FLUSHDB", "SYNC")
        client.close()

    # -- figures ---------------------------------------------------------------------------------

    def inprocess(self) -> Result:
        a = self.args
        counts = ["--runs", str(a.runs), "--requests", str(a.requests), "--warmup", str(a.warmup)]
        found = {}
        for system in self.systems:
            if system in REDIS_SYSTEMS:
                self.flush_redis()
            found[system] = self.worker("inprocess", system, *counts)
        return found

    def redis_commands(self) -> Result:
        return {
            system: self.worker("redis-commands", system, "--requests", "50")
            for system in self.systems
            if system in REDIS_SYSTEMS
        }

    def postgres_statements(self) -> Result:
        return {
            system: self.worker("postgres-statements", system, "--requests", "50")
            for system in self.systems
            if system in POSTGRES_SYSTEMS
        }

    def memory(self) -> Result:
        sessions = str(self.args.sessions)
        found: Result = {"stores": {}, "redis": {}}
        # Memory, not time, is measured here: two processes at once (one per core) halve the wait.
        stores = ("ours-memory", "ours-middleware", "starsessions-memory", "fastapi-sessions")
        jobs = [("memory", s, sessions) for s in stores]
        jobs.append(("reclaim", "ours-memory", str(self.args.reclaim)))
        jobs = [job for job in jobs if job[1] in self.systems]
        with ThreadPoolExecutor(2) as pool:
            done = pool.map(lambda job: self.worker(job[0], job[1], "--sessions", job[2]), jobs)
            for (task, system, _), result in zip(jobs, list(done), strict=True):
                if task == "memory":
                    found["stores"][system] = result
                else:
                    found["reclaim"] = result
        for system in REDIS_SYSTEMS:
            if system in self.systems:
                found["redis"][system] = self.worker(
                    "redis-memory", system, "--sessions", str(self.args.redis_sessions)
                )
        return found

    def instructions(self) -> Result:
        """Figure (e): CPU instructions per request under callgrind: deterministic, unlike time.

        Each (system, route) runs twice under valgrind, with ``--instr-requests`` requests and with
        none after the same warm-up; the difference divided by the count is one request's cost.
        """
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            log("  valgrind not installed: skipping instructions per request")
            return {}
        jobs = [
            (system, path)
            for system, paths in INSTRUCTION_CASES.items()
            if system in self.systems
            for path in paths
        ]
        count = self.args.instr_requests

        def collected(system: str, path: str, requests: int) -> int:
            command = [
                valgrind,
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                str(HERE / "worker.py"),
                "requests",
                "--system",
                system,
                "--path",
                path,
                "--requests",
                str(requests),
                "--warmup",
                "100",
                "--out",
                str(self.tmp / f"requests-{system}-{path.strip('/')}-{requests}.json"),
            ]
            # A fixed hash seed: string hashes decide dict collisions, and with them a few thousand
            # instructions per request that would otherwise move from run to run.
            env = {**self.env(system), "PYTHONHASHSEED": "0"}
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, cwd=self.tmp
            )
            match = re.search(r"Collected : (\d+)", done.stderr)
            if done.returncode != 0 or match is None:
                raise RuntimeError(f"callgrind run of {system} {path} failed:\n{done.stderr[-2000:]}")
            return int(match[1])

        def measure(job: tuple[str, str]) -> tuple[str, str, float]:
            system, path = job
            per_request = (collected(system, path, count) - collected(system, path, 0)) / count
            log(f"  instructions {system} {path}: {per_request:,.0f}")
            return system, path, per_request

        found: Result = {"requests": count, "tool": "valgrind --tool=callgrind", "systems": {}}
        with ThreadPoolExecutor(2) as pool:  # instructions do not depend on what the other core does
            for system, path, per_request in pool.map(measure, jobs):
                found["systems"].setdefault(system, {})[path] = per_request
        return found

    def end_to_end(self) -> Result:
        """Figure (b): every system served at once, loaded in rounds that interleave the systems.

        The machine's speed drifts over minutes; interleaving puts that drift on every system alike,
        and each ratio to plain FastAPI is taken within a round, then the median of the rounds.
        """
        loadgen = self.args.loadgen
        if loadgen == "auto":
            loadgen = "wrk" if shutil.which("wrk") else "python"
        rounds, duration = self.args.rounds, self.args.duration
        found: Result = {
            "loadgen": loadgen,
            "duration": duration,
            "warmup": _E2E_WARMUP,
            "rounds": rounds,
            "connections": self.args.connections,
            "systems": {},
        }
        if any(system in REDIS_SYSTEMS for system in self.systems):
            self.flush_redis()
        servers: dict[str, tuple[subprocess.Popen[bytes], int, str | None]] = {}
        runs: dict[str, dict[str, list[Result]]] = {s: {p: [] for p in ROUTES} for s in self.systems}
        try:
            for system in self.systems:
                servers[system] = self._serve(system)
            for number in range(rounds):
                shift = number % len(self.systems)  # each system takes each place in turn
                order = self.systems[shift:] + self.systems[:shift]
                for path in ROUTES:
                    for system in order:
                        server, port, cookie = servers[system]
                        header = None if path == "/login" else cookie
                        self._load(loadgen, port, path, header, _E2E_WARMUP)
                        runs[system][path].append(self._load(loadgen, port, path, header, duration))
                        if server.poll() is not None:
                            raise RuntimeError(f"uvicorn for {system} died")
                log(f"  end-to-end round {number + 1} of {rounds} done")
        finally:
            for server, _, _ in servers.values():
                server.terminate()
            for server, _, _ in servers.values():
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
        for system in self.systems:
            summary: Result = {"uvicorn": " ".join(map(str, servers[system][0].args[1:]))}
            for path in ROUTES:
                mine, plain = runs[system][path], runs["plain"][path]
                summary[path] = {
                    "rps": statistics.median(run["rps"] for run in mine),
                    "share": statistics.median(
                        run["rps"] / base["rps"] for run, base in zip(mine, plain, strict=True)
                    ),
                    "p50_ms": statistics.median(run["p50_ms"] for run in mine),
                    "p99_ms": statistics.median(run["p99_ms"] for run in mine),
                    "errors": sum(run.get("errors", 0) for run in mine),
                    "rounds_rps": [run["rps"] for run in mine],
                }
            found["systems"][system] = summary
            log(
                f"  end-to-end {system}: "
                + ", ".join(f"{p} {summary[p]['rps']:.0f}/s ({summary[p]['share']:.0%})" for p in ROUTES)
            )
        return found

    def _serve(self, system: str) -> tuple[subprocess.Popen[bytes], int, str | None]:
        """Start uvicorn for ``system``: the process, its port and the cookie of a logged-in browser."""
        port = free_port()
        env = self.env(system)
        env["BENCH_SYSTEM"] = system
        env["BENCH_REDIS_URL"] = self.redis.url if self.redis and system in REDIS_SYSTEMS else ""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "apps.serve:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        # cwd = tests/benchmarks: `-m` puts the cwd first on sys.path, and the repo root must not be
        # there (it holds our fastapi_sessions, which would shadow the peer's).
        server = subprocess.Popen(command, cwd=HERE, env=env)
        try:
            self._wait_up(port, server)
            return server, port, self._login_cookie(port, system)
        except BaseException:
            server.kill()
            raise

    @staticmethod
    def _get(port: int, path: str, cookie: str | None = None) -> tuple[int, list[str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
            response = connection.getresponse()
            return response.status, response.headers.get_all("set-cookie") or [], response.read()
        finally:
            connection.close()

    def _wait_up(self, port: int, server: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("uvicorn exited at start-up")
            try:
                if self._get(port, "/bare")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not come up in 30 s")

    def _login_cookie(self, port: int, system: str) -> str | None:
        status, set_cookies, _ = self._get(port, "/login")
        if system.startswith("plain"):
            # The floors get the same request a browser sends: a Cookie header of a session's size
            # (parsing it costs FastAPI/uvicorn something; the session systems must not pay it alone).
            return PLAIN_COOKIE
        if status != 200 or not set_cookies:
            raise RuntimeError(f"/login gave no cookie ({status})")
        cookie = "; ".join(value.split(";", 1)[0].strip() for value in set_cookies)
        status, _, body = self._get(port, "/read", cookie)
        if status != 200 or b"42" not in body:
            raise RuntimeError(f"/read with the login cookie failed: {status} {body!r}")
        return cookie

    def _load(self, loadgen: str, port: int, path: str, cookie: str | None, duration: float) -> Result:
        url = f"http://127.0.0.1:{port}{path}"
        connections = str(self.args.connections)
        if loadgen == "wrk":
            command = [
                "wrk",
                "-t1",
                "-c",
                connections,
                "-d",
                f"{duration:g}s",
                "--latency",
                "--timeout",
                "5s",
            ]
            if cookie:
                command += ["-H", f"Cookie: {cookie}"]
            output = subprocess.run(
                [*command, url], capture_output=True, text=True, check=True, timeout=duration + 30
            ).stdout
            return _parse_wrk(output)
        command = [
            sys.executable,
            str(HERE / "loadgen.py"),
            "--port",
            str(port),
            "--path",
            path,
            "--duration",
            str(duration),
            "--connections",
            connections,
        ]
        if cookie:
            command += ["--cookie", cookie]
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration + 60
        ).stdout
        result: Result = json.loads(output)
        return result

    # -- everything ------------------------------------------------------------------------------

    def machine(self) -> Result:
        cpu = "unknown"
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        versions = {}
        for name in (
            "pselfastapise-async",
            "fastapi",
            "starlette",
            "pydantic",
            "pydantic-core",
            "redis",
            "uvicorn",
            "starsessions",
            "itsdangerous",
            "matplotlib",
        ):
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
        if self.peer:
            found = list(Path(self.peer).glob("fastapi_sessions-*.dist-info"))
            versions["fastapi-sessions"] = (
                found[0].name.split("-")[1].removesuffix(".dist") if found else "?"
            )
        if self.redis is not None:
            import redis

            client = redis.Redis.from_url(self.redis.url)
            server = client.info("server")
            client.close()
            version = server.get("valkey_version") or server["redis_version"]
            versions["redis server"] = f"{server.get('server_name', 'redis')} {version}"
        wrk = shutil.which("wrk")
        if wrk:
            line = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.splitlines()
            versions["wrk"] = line[0].split(" [")[0] if line else "?"
        driver = " ".join(shlex.quote(a) for a in sys.argv)
        via_nox = os.environ.get("NOX_CURRENT_SESSION")
        system = "unknown"
        try:
            system = platform.freedesktop_os_release().get("PRETTY_NAME", system)
        except OSError:
            system = f"{platform.system()} {platform.release()}"
        return {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "os": system,
            "python": platform.python_version(),
            "model": os.environ.get("BENCH_MODEL", "realistic"),
            "platform": platform.platform(),
            "versions": versions,
            "command": f"nox -s {via_nox}" if via_nox else driver,
            "driver": f"python {driver}",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }

    def run(self) -> Result:
        started = time.monotonic()
        self.redis = start_server("--maxmemory", "0")
        try:
            results: Result = {
                "machine": self.machine(),
                "systems": self.systems,
                "settings": {k: v for k, v in vars(self.args).items() if k != "peer_path"},
            }
            log("(a) in-process, raw ASGI")
            results["inprocess"] = self.inprocess()
            log("(c) Redis commands per request")
            results["redis_commands"] = self.redis_commands()
            results["postgres_statements"] = self.postgres_statements()
            log("(d) memory per stored session")
            results["memory"] = self.memory()
            if not self.args.skip_e2e:
                log("(b) end to end under uvicorn")
                results["e2e"] = self.end_to_end()
            if not self.args.skip_instructions:
                log("(e) instructions per request, under callgrind")
                results["instructions"] = self.instructions()
        finally:
            self.redis.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
        results["seconds"] = round(time.monotonic() - started)
        return results


def _postgres_answers() -> bool:
    """Whether the PostgreSQL server of the benchmark's PostgreSQL systems answers."""
    import asyncio

    try:
        import asyncpg
    except ImportError:  # the [postgres] extra is not installed
        return False
    from apps.ours import POSTGRES_URL

    url = os.environ.get("BENCH_POSTGRES_URL") or POSTGRES_URL

    async def probe() -> None:
        connection = await asyncpg.connect(url.replace("&table=bench_sessions", ""), timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError):
        return False
    return True


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _parse_wrk(output: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": int(total[1]),
        "rps": float(rps[1]),
        "p50_ms": _ms(p50[1]),
        "p99_ms": _ms(p99[1]),
        "errors": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1] if socket_errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peer-path", help="where `pip install --target` put the PyPI fastapi-sessions")
    parser.add_argument("--systems", nargs="*", choices=list(SYSTEMS), help="a subset (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the plumbing only")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-instructions", action="store_true", help="no callgrind figure (e)")
    parser.add_argument("--instr-requests", type=int, default=300)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of load per e2e run")
    parser.add_argument("--rounds", type=int, default=5, help="end-to-end rounds over every system")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--reclaim", type=int, default=20_000)
    parser.add_argument("--redis-sessions", type=int, default=50_000)
    parser.add_argument("--out", help="docs dir to write (default: docs/; with --quick a temporary one)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.requests, args.warmup, args.duration, args.rounds = 2, 200, 20, 1.0, 1
        args.sessions, args.reclaim, args.redis_sessions = 2000, 2000, 2000
        args.instr_requests = 20
    out = Path(args.out or (tempfile.mkdtemp(prefix="bench-quick-") if args.quick else ROOT / "docs"))
    if args.quick and not args.out:
        shutil.copy(ROOT / "docs" / "benchmarks.md", out / "benchmarks.md")
    results = Bench(args).run()
    render(results, out)
    log(f"results in {out}")
    log(f"done in {results['seconds']} s")


if __name__ == "__main__":
    main()
