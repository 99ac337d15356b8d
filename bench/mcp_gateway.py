"""Benchmark of /mcp tools/call: gateway with and without token checks, proxy vs. direct; prints, asserts nothing."""

import argparse
import asyncio
import atexit
import itertools
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/, whose mcp_gateway.py (this file) would hide the package
WORK = Path(tempfile.mkdtemp(prefix="muster-bench-mcp-"))  # databases, logs; removed at exit
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
# Django must be set up to import the test helpers; this process never opens the database.
os.environ.update(
    DJANGO_SETTINGS_MODULE="muster_project.settings",
    DATABASE_URL=f"sqlite:///{WORK}/unused.sqlite3",
    MUSTER_SECRET_KEY="bench-" + "x" * 40,
)
os.environ.pop("MUSTER_CONFIG", None)

import django  # noqa: E402

django.setup()
logging.getLogger("httpx").setLevel(logging.WARNING)  # Django's logging config shows every request otherwise

import httpx  # noqa: E402

from tests.servers.processes import (  # noqa: E402
    STOP_TIMEOUT_SECONDS,
    free_port,
    http_problem,
    start_until_ready,
    stop_process_group,
)
from tests.servers.site import (  # noqa: E402
    HEALTH_TIMEOUT_SECONDS,
    SITE_PROTOCOL,
    Site,
    SiteError,
    signed_in_tokens,
    uvicorn_command,
)

PROTOCOL_VERSION = "2025-06-18"
MCP_ACCEPT = "application/json, text/event-stream"
ECHO_TEXT = "hello from the bench"
REQUEST_TIMEOUT_SECONDS = 10.0
WARM_UP_SECONDS = 1
SITE_APP = "muster_project.asgi:application"
IDS_PER_RUN = 100_000_000  # JSON-RPC ids must be unique among requests in flight on one MCP session
# The load comes from one address and one user: limits far above any rate reached here, so no request is a 429.
UNLIMITED = {f"MUSTER_RATE_LIMIT_{name}": "1000000" for name in ("IP_RATE", "IP_BURST", "USER_RATE", "USER_BURST")}


# --- the servers ---


class Uvicorn:
    """`app` served by one uvicorn process on a free loopback port, like the site's; stopped on exit."""

    def __init__(self, app: str, env: Mapping[str, str], log_path: Path, *, lifespan: str, ready_path: str) -> None:
        self.app = app
        self.env = dict(env)
        self.log_path = log_path
        self.lifespan = lifespan
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ready_url = self.base_url + ready_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = uvicorn_command(self.port)  # the site's own options, with our app and lifespan setting
        command[command.index(SITE_APP)] = self.app
        command[command.index("--lifespan") + 1] = self.lifespan
        if self.app != SITE_APP:  # the site's protocol reads the site's settings
            command[command.index(SITE_PROTOCOL)] = "httptools"
        self._log = self.log_path.open("ab")
        try:
            self._process = start_until_ready(
                command,
                env=self.env,
                output=self._log,
                errors=subprocess.STDOUT,
                ready=lambda: http_problem(self.ready_url, lambda answer: answer.status_code < 500),
                timeout=HEALTH_TIMEOUT_SECONDS,
                failure=lambda reason: SiteError(f"{self.app} {reason}:\n{self.log_tail()}"),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group after STOP_TIMEOUT_SECONDS."""
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process, STOP_TIMEOUT_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# --- MCP over HTTP ---


def mcp_headers(access_token: str | None, session_id: str | None = None) -> dict[str, str]:
    headers = {"accept": MCP_ACCEPT, "content-type": "application/json", "mcp-protocol-version": PROTOCOL_VERSION}
    if access_token:
        headers["authorization"] = f"Bearer {access_token}"
    if session_id:
        headers["mcp-session-id"] = session_id
    return headers


def jsonrpc(method: str, params: dict[str, Any], request_id: int | None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message, separators=(",", ":")).encode()


def echo_call(request_id: int) -> bytes:
    return jsonrpc("tools/call", {"name": "echo", "arguments": {"text": ECHO_TEXT}}, request_id)


def open_session(url: str, access_token: str | None) -> str | None:
    """initialize + notifications/initialized; the Mcp-Session-Id the server gave (None from a stateless app)."""
    hello = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as http:
        answer = http.post(url, content=jsonrpc("initialize", hello, 0), headers=mcp_headers(access_token))
        if answer.status_code != 200:
            raise SiteError(f"initialize at {url}: {answer.status_code} {answer.text[:300]}")
        session_id = answer.headers.get("mcp-session-id")
        done = http.post(
            url,
            content=jsonrpc("notifications/initialized", {}, None),
            headers=mcp_headers(access_token, session_id),
        )
        if done.status_code != 202:
            raise SiteError(f"notifications/initialized at {url}: {done.status_code} {done.text[:300]}")
    return session_id


def echoed_text(answer: httpx.Response) -> str | None:
    """The text of the tools/call result, from a JSON or an SSE answer."""
    payloads = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")] or [answer.text]
    for payload in payloads:
        try:
            return str(json.loads(payload)["result"]["content"][0]["text"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return None


@dataclass(frozen=True)
class Target:
    """An MCP endpoint with an open session: what one scenario loads."""

    name: str
    url: str
    headers: dict[str, str]
    server_pids: tuple[int, ...]  # every server process that works on this scenario's requests

    @property
    def session(self) -> str:
        return "stateful (Mcp-Session-Id)" if "mcp-session-id" in self.headers else "stateless (no Mcp-Session-Id)"

    def check(self) -> None:
        """One echo call must come back; a broken setup would otherwise measure fast errors."""
        answer = httpx.post(self.url, content=echo_call(0), headers=self.headers, timeout=REQUEST_TIMEOUT_SECONDS)
        if answer.status_code != 200 or echoed_text(answer) != ECHO_TEXT:
            raise SiteError(f"{self.name}: echo answered {answer.status_code} {answer.text[:300]}")


def target(name: str, url: str, access_token: str | None, *server_pids: int | None) -> Target:
    pids = tuple(pid for pid in server_pids if pid is not None)
    return Target(name, url, mcp_headers(access_token, open_session(url, access_token)), pids)


# --- load generators ---


@dataclass(frozen=True)
class Figures:
    """One measured slice, or several combined."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_seconds: tuple[float, ...] = ()  # per server process, in Target.server_pids order
    load_cpu_seconds: float = 0.0
    other_cpu_seconds: float = 0.0  # everything else on the machine meanwhile (other work, steal time)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_ms_per_request(self) -> float:
        return 1e3 * sum(self.server_cpu_seconds) / self.requests if self.requests else 0.0

    @property
    def server_cores(self) -> str:
        """How many CPUs each server process kept busy, e.g. `0.95 + 0.30` for the proxy and its upstream."""
        return " + ".join(f"{cpu / self.seconds:.2f}" for cpu in self.server_cpu_seconds) if self.seconds else "-"


def combine(slices: list[Figures]) -> Figures:
    """Totals; the percentiles as the request-weighted mean of the slices' percentiles."""
    requests = sum(part.requests for part in slices)

    def weighted(value: Callable[[Figures], float]) -> float:
        return sum(value(part) * part.requests for part in slices) / requests if requests else 0.0

    return Figures(
        requests,
        sum(part.seconds for part in slices),
        weighted(lambda part: part.p50_ms),
        weighted(lambda part: part.p99_ms),
        sum(part.errors for part in slices),
        tuple(map(sum, zip(*(part.server_cpu_seconds for part in slices), strict=True))),
        sum(part.load_cpu_seconds for part in slices),
        sum(part.other_cpu_seconds for part in slices),
    )


WRK_SCRIPT = """
local prefix = [==[{prefix}]==]
local suffix = [==[{suffix}]==]
wrk.method = "POST"
{headers}
local threads = 0
function setup(thread)
  thread:set("index", threads)
  threads = threads + 1
end
function init(args)
  counter = tonumber(args[1]) + index * 1000000
end
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. counter .. suffix)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.0f %.0f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_script(target: Target) -> str:
    """Every request gets its own JSON-RPC id: the Lua builds the body around a counter."""
    prefix, suffix = echo_call(123456789).decode().split("123456789")
    headers = "\n".join(f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in target.headers.items())
    return WRK_SCRIPT.format(prefix=prefix, suffix=suffix, headers=headers)


def wrk_load(target: Target, seconds: int, concurrency: int, first_id: int) -> Figures:
    """wrk, one thread (it needs far less than a core), `concurrency` keep-alive connections."""
    script = WORK / "echo.lua"
    script.write_text(wrk_script(target))
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", f"--timeout={REQUEST_TIMEOUT_SECONDS:.0f}s"]
    result = subprocess.run(  # noqa: S603 (wrk from PATH, our arguments)
        [*command, "-s", str(script), target.url, "--", str(first_id)],
        capture_output=True,
        text=True,
        timeout=seconds + REQUEST_TIMEOUT_SECONDS + 30,
        check=False,
    )
    match = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise SiteError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    requests, duration_us, p50_us, p99_us, status_errors, socket_errors = map(int, match.groups())
    return Figures(requests, duration_us / 1e6, p50_us / 1e3, p99_us / 1e3, status_errors + socket_errors)


async def _python_load(target: Target, seconds: int, concurrency: int, first_id: int) -> Figures:
    ids = itertools.count(first_id + 1)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as http:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:  # and each request is bounded by REQUEST_TIMEOUT_SECONDS
                started = time.perf_counter()
                try:
                    answer = await http.post(target.url, content=echo_call(next(ids)), headers=target.headers)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Figures(len(latencies), elapsed, cuts[49] * 1e3, cuts[98] * 1e3, errors)


def python_load(target: Target, seconds: int, concurrency: int, first_id: int) -> Figures:
    """httpx in this process: it needs much more CPU than wrk, CPU the servers then do not get."""
    return asyncio.run(_python_load(target, seconds, concurrency, first_id))


LoadGenerator = Callable[[Target, int, int, int], Figures]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time all processes have used since boot, steal time included (0 where there is no /proc)."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0.0
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process and its finished children (wrk): the load generator's CPU."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def measure(target: Target, generator: LoadGenerator, seconds: int, concurrency: int, run: int) -> Figures:
    """Warm up for WARM_UP_SECONDS, then measure for `seconds`, counting the CPU the servers and the load used."""
    target.check()
    generator(target, WARM_UP_SECONDS, concurrency, 2 * run * IDS_PER_RUN)
    servers_before = [process_cpu_seconds(pid) for pid in target.server_pids]
    load_before, machine_before = own_cpu_seconds(), machine_cpu_seconds()
    figures = generator(target, seconds, concurrency, (2 * run + 1) * IDS_PER_RUN)
    servers_after = [process_cpu_seconds(pid) for pid in target.server_pids]
    servers = tuple(after - before for after, before in zip(servers_after, servers_before, strict=True))
    load = own_cpu_seconds() - load_before
    other = max(0.0, machine_cpu_seconds() - machine_before - sum(servers) - load)
    return replace(figures, server_cpu_seconds=servers, load_cpu_seconds=load, other_cpu_seconds=other)


# --- the report ---


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"machine: nproc {cpus}, CPU {model}, Python {platform.python_version()}, {platform.system()}"


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)  # noqa: S607
    found = re.search(r"wrk (\S+)", result.stdout + result.stderr)
    return f"wrk {found[1]}" if found else "wrk"


COLUMNS = (
    "scenario",
    "requests/s",
    "p50 ms",
    "p99 ms",
    "server CPU ms/req",
    "server cores",
    "load cores",
    "other cores",
    "errors",
)


def print_table(results: dict[str, Figures]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * (len(COLUMNS) - 1))
    for name, figures in results.items():
        cells = [
            name,
            f"{figures.per_second:.0f}",
            f"{figures.p50_ms:.1f}",
            f"{figures.p99_ms:.1f}",
            f"{figures.server_ms_per_request:.2f}",
            figures.server_cores,
            f"{figures.load_cpu_seconds / figures.seconds:.2f}",
            f"{figures.other_cpu_seconds / figures.seconds:.2f}",
            str(figures.errors),
        ]
        print("| " + " | ".join(cells) + " |")


LEGEND = """\
server CPU ms/req: CPU time the server process(es) spent per request (user + system)
server cores: CPUs each server process kept busy (proxy: gateway + upstream); load cores: the load generator;
other cores: the rest of the machine meanwhile (other work, hypervisor steal); p50/p99: request-weighted mean of
the slices' percentiles"""


def print_ratio(label: str, numerator: Figures, denominator: Figures, goal: float | None = None) -> None:
    ratio = numerator.per_second / denominator.per_second if denominator.per_second else float("nan")
    verdict = f" (goal >= {goal:.2f}: {'met' if ratio >= goal else 'NOT met'})" if goal is not None else ""
    added = numerator.p50_ms - denominator.p50_ms
    print(f"{label}: requests/s ratio {ratio:.2f}{verdict}; p50 {added:+.1f} ms")


# --- the run ---

AUTHENTICATED = "gateway + in-process demo, bearer token"
UNAUTHENTICATED = "gateway + in-process demo, no token check"
PROXIED = "gateway proxying to upstream demo, token"
DIRECT = "upstream demo directly, no gateway"


def start_servers(stack: ExitStack) -> list[Target]:
    """The four scenarios' servers, each with an open MCP session; all stop when `stack` closes."""
    site = stack.enter_context(Site(WORK / "site", extra_env=UNLIMITED))
    access_token = signed_in_tokens(site, site.create_public_client("bench client"))["access_token"]
    unauthenticated = stack.enter_context(
        Uvicorn(
            "bench.unauthenticated_asgi:application",
            site.env,
            WORK / "unauthenticated.log",
            lifespan="off",
            ready_path="/health",
        )
    )
    upstream = stack.enter_context(
        Uvicorn("mcp_gateway.demo:app", site.env, WORK / "upstream.log", lifespan="on", ready_path="/")
    )
    # The same site (database, base URL, so the same token) in a second process that proxies to the upstream.
    proxy_env = {**site.env, "MUSTER_MCP_UPSTREAM_URL": f"{upstream.base_url}/mcp"}
    proxy = stack.enter_context(Uvicorn(SITE_APP, proxy_env, WORK / "proxy.log", lifespan="off", ready_path="/health"))
    site_pid = site._process.pid if site._process is not None else None  # the helper keeps its process private
    return [
        target(AUTHENTICATED, f"{site.base_url}/mcp", access_token, site_pid),
        target(UNAUTHENTICATED, f"{unauthenticated.base_url}/mcp", None, unauthenticated.pid),
        target(PROXIED, f"{proxy.base_url}/mcp", access_token, proxy.pid, upstream.pid),
        target(DIRECT, f"{upstream.base_url}/mcp", None, upstream.pid),
    ]


def run_rounds(scenarios: list[Target], generator: LoadGenerator, arguments: argparse.Namespace) -> dict[str, Figures]:
    """Every scenario once per round, in alternating order so that drift on the machine hits them all alike."""
    slice_seconds = max(1, arguments.seconds // arguments.rounds)
    slices: dict[str, list[Figures]] = {scenario.name: [] for scenario in scenarios}
    runs = itertools.count()
    for round_number in range(arguments.rounds):
        for scenario in scenarios if round_number % 2 == 0 else reversed(scenarios):
            figures = measure(scenario, generator, slice_seconds, arguments.concurrency, next(runs))
            slices[scenario.name].append(figures)
            print(f"  round {round_number + 1}: {scenario.name:<42} {figures.per_second:6.0f} requests/s", flush=True)
    return {name: combine(parts) for name, parts in slices.items()}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per scenario (default 10)")
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved slices the seconds are split in (2)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    arguments = parser.parse_args()
    if min(arguments.seconds, arguments.concurrency, arguments.rounds) < 1:
        parser.error("--seconds, --concurrency and --rounds must be at least 1")
    if arguments.generator == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk), use --generator python")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    use_wrk = arguments.generator == "wrk" or (arguments.generator == "auto" and shutil.which("wrk") is not None)
    generator: LoadGenerator = wrk_load if use_wrk else python_load
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the exit stack stops the servers
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(machine())
    load = f"{wrk_version()}, 1 thread" if use_wrk else "Python httpx in the bench process"
    slice_seconds = max(1, arguments.seconds // arguments.rounds)
    print(f"load: {load}, {arguments.concurrency} connections")
    print(f"each scenario: {arguments.rounds} interleaved slices of {slice_seconds} s, each after a 1 s warm-up")
    print("servers: uvicorn, 1 worker each, SQLite, in-memory cache; the load generator shares the CPUs")
    with ExitStack() as stack:  # stops every server, also on errors, Ctrl-C and SIGTERM
        scenarios = start_servers(stack)
        print("MCP sessions: " + ", ".join(sorted({scenario.session for scenario in scenarios})))
        results = run_rounds(scenarios, generator, arguments)
    print()
    print_table(results)
    print(LEGEND)
    print()
    print_ratio("authenticated / unauthenticated", results[AUTHENTICATED], results[UNAUTHENTICATED], goal=0.90)
    print_ratio("through the proxy / direct", results[PROXIED], results[DIRECT])


if __name__ == "__main__":
    main()
