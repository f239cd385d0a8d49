"""The service over several real inference servers: `python -m benchmarks.service_load --upstreams 2`.

Starts ``--upstreams`` llama.cpp servers (`benchmarks.upstreams`, one thread each, the given
model) and, in this process, the service with ``engine.kind = "pool"`` in front of them, then:

1. overhead: the same prompts sent one at a time to the first server directly and through
   the service over that server alone, alternating which goes first; before each timed call
   an unrelated one-token prompt replaces the server's cached prompt, so neither call of a
   pair reuses the other's KV (that reuse made the second call hundreds of ms faster, and the
   p50 of half cached, half fresh calls fell between the two groups);
2. throughput: ``--requests`` from ``--clients`` through the service over 1, then all servers;
3. failure: the same load streamed over all servers, one server paused and killed once a
   quarter of the requests are answered while it generates and requests queue, restarted at
   once; outcomes, the failed-over share, and how long it took to be back in use;
4. routing: ``--affinity-users`` users typing ``--keystrokes`` keystrokes each into a long
   file (one request per keystroke, users at the same time), with prefix and least-loaded
   routing.

Every request must end with a status (a stream with its finish or an error event); the
service's own request counter must agree with the clients'. Prints markdown tables.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .latency import percentile
from .service_load import prompts, run_load, server_counts

KEYS = [f"client{i:03d}-0123456789abcdef" for i in range(64)]
FLUSH_PROMPT = "Hello"
"""Sent to a server before each timed call of the overhead pairs: it shares no prefix with the
code prompts, so the timed call finds nothing of its prompt in the server's cache."""
_SOURCE = Path(__file__).resolve().parents[1] / "repoctx"


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class LoadSampler:
    """The 1-minute load average every few seconds while a run goes on."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples = [loadavg()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(loadavg())

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return (f"{self.samples[0]:.2f} at start, median {statistics.median(self.samples):.2f}, "
                f"max {max(self.samples):.2f} during")


@contextlib.contextmanager
def service_over(servers: list, args: Any, routing: str = "prefix", clients: int = 16):
    """The service in this process with a pool over `servers` (one generation at a time each)."""
    from repoctx.service.app import create_app, serve_in_thread
    from repoctx.service.security import KeyStore
    from repoctx.service.settings import ServiceSettings

    settings = ServiceSettings()
    engine = settings.repoctx.engine
    engine.kind, engine.model, engine.context_window, engine.timeout_s = "pool", args.model, args.window, args.timeout
    engine.routing, engine.health_interval_s = routing, args.health_interval
    engine.upstreams = [{"endpoint": s.url, "name": f"u{i}", "concurrency": 1} for i, s in enumerate(servers)]
    settings.completion_cache_size = 0  # every request reaches an upstream
    settings.limits.queue_size = max(64, args.requests)
    settings.limits.queue_timeout_s = args.timeout
    settings.limits.requests_per_minute = 0
    keys = KEYS[:max(1, clients)]
    app = create_app(settings, KeyStore.from_lines([f"c{i}:{k}" for i, k in enumerate(keys)]))
    with serve_in_thread(app, startup_timeout_s=120) as (url, _server):
        yield url, app.state.service.slots["default"], keys


def summary(label: str, outcomes: list[tuple[str, float, int]], wall: float, counted: dict | None) -> dict:
    statuses = collections.Counter(outcome for outcome, _, _ in outcomes)
    ok = [seconds * 1000 for outcome, seconds, _ in outcomes if outcome == "200"]
    client_side: dict[str, int] = collections.Counter()
    for outcome, count in statuses.items():
        if not outcome.startswith("lost"):
            client_side["200" if outcome == "200+error" else outcome] += count
    return {"label": label, "requests": len(outcomes), "completed": len(ok),
            "lost": sum(n for o, n in statuses.items() if o.startswith("lost")), "wall": wall,
            "rate": len(ok) / wall if wall else 0.0, "p50": percentile(ok, 50), "p95": percentile(ok, 95),
            "statuses": dict(sorted(statuses.items())), "counter_agrees": counted == dict(client_side)}


def load_row(row: dict) -> str:
    by_status = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
    return (f"| {row['label']} | {row['requests']} | {row['completed']} | {row['lost']} | {row['wall']:.1f} "
            f"| {row['rate']:.2f} | {row['p50']:.0f} / {row['p95']:.0f} | {by_status} "
            f"| {'yes' if row['counter_agrees'] else 'NO'} |")


async def overhead_pairs(service_url: str, key: str, upstream_url: str, texts: list[str], max_tokens: int,
                         timeout_s: float) -> tuple[list[float], list[float], int]:
    """Direct and through-the-service seconds for each prompt, and how many answers were equal."""
    import httpx

    direct_s: list[float] = []
    service_s: list[float] = []
    same = 0
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        async def call(url: str, headers: dict, body: dict) -> tuple[float, str]:
            started = time.perf_counter()
            response = await http.post(url, json=body, headers=headers)
            response.raise_for_status()
            return time.perf_counter() - started, response.json()["choices"][0]["text"]

        async def fresh(timed) -> tuple[float, str]:
            await call(f"{upstream_url}/v1/completions", {}, {"prompt": FLUSH_PROMPT, "max_tokens": 1})
            return await timed

        for index, text in enumerate(texts):
            body = {"prompt": text, "max_tokens": max_tokens, "temperature": 0}
            direct = fresh(call(f"{upstream_url}/v1/completions", {}, body))
            served = fresh(call(f"{service_url}/v1/completions", {"Authorization": f"Bearer {key}"}, body))
            if index % 2 == 0:
                (d, d_text), (v, v_text) = await direct, await served
            else:
                (v, v_text), (d, d_text) = await served, await direct
            direct_s.append(d)
            service_s.append(v)
            same += d_text == v_text
    return direct_s, service_s, same


def run_failure(servers: list, args: Any, total: int, clients: int) -> tuple[dict, dict]:
    """Streamed load over all servers; the last one is paused and killed mid-run, then restarted."""
    import httpx

    victim, name = servers[-1], f"u{len(servers) - 1}"
    record: dict[str, Any] = {}
    with service_over(servers, args, clients=clients) as (url, slot, keys):
        pool = slot.engine
        outcomes: list[tuple[str, float, int]] = []

        def chaos() -> None:
            deadline = time.monotonic() + args.timeout
            while not (len(outcomes) >= total // 4 and pool.status()["upstreams"][name]["inflight"] >= 1):
                if time.monotonic() > deadline:
                    record["error"] = "the victim never got a request"
                    return
                time.sleep(0.01)
            victim.pause()  # it stops mid-generation ...
            time.sleep(0.2)
            status = pool.status()
            record["inflight_at_kill"] = status["upstreams"][name]["inflight"]
            record["queued_at_kill"] = slot.gate.waiting
            record["answered_at_kill"] = len(outcomes)
            killed_at = time.monotonic()
            victim.kill()  # ... and dies
            victim.start().wait_ready()
            ready_at = time.monotonic()
            while pool.status()["upstreams"][name]["state"] != "up":
                if time.monotonic() > deadline:
                    record["error"] = "the restarted server was not marked up"
                    return
                time.sleep(0.01)
            up_at = [e["at"] for e in pool.events if e["upstream"] == name and e["up"]][-1]
            record.update(down_s=up_at - killed_at, restart_s=ready_at - killed_at, recovery_s=up_at - ready_at,
                          served_at_up=pool.status()["upstreams"][name]["served"])

        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        outcomes, wall = asyncio.run(run_load(url, keys, "completions", total, clients, args.max_tokens,
                                              args.timeout, stream=True, outcomes=outcomes))
        killer.join(args.timeout)
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys[0]}"}).text
        status = pool.status()
        record["pool"] = status
        record["served_after_up"] = status["upstreams"][name]["served"] - record.get("served_at_up", 0)
        return summary(f"{len(servers)} upstreams, one killed and restarted (streamed)", outcomes, wall,
                       server_counts(metrics, "/v1/completions")), record


def typing_sessions(users: int, keystrokes: int, head_chars: int) -> list[list[str]]:
    """Per user, the prompts of successive keystrokes: a long file head plus the next line being typed."""
    files = sorted(p for p in _SOURCE.rglob("*.py") if p.stat().st_size > head_chars + 400)
    sessions: list[list[str]] = []
    for user in range(users):
        text = files[(user * 7) % len(files)].read_text(encoding="utf-8")
        cut = text.rfind("\n", 0, head_chars) + 1
        sessions.append([text[:cut + k] for k in range(1, keystrokes + 1)])
    return sessions


async def run_typing(url: str, keys: list[str], sessions: list[list[str]], timeout_s: float) -> list[float]:
    import httpx

    seconds: list[float] = []

    async def user(number: int, session: list[str]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s,
                                     headers={"Authorization": f"Bearer {keys[number]}"}) as http:
            for text in session:
                started = time.perf_counter()
                response = await http.post("/v1/completions", json={"prompt": text, "max_tokens": 4})
                response.raise_for_status()
                seconds.append(time.perf_counter() - started)

    await asyncio.gather(*(user(i, session) for i, session in enumerate(sessions)))
    return seconds


def flush(servers: list, timeout_s: float) -> None:
    """An unrelated prompt to every server, so no routing starts with another's cache."""
    import httpx

    for server in servers:
        httpx.post(f"{server.url}/v1/completions", json={"prompt": "Hello", "max_tokens": 1}, timeout=timeout_s)


def run(args: Any, command: str) -> int:
    from repoctx.models import resolve_model

    from .upstreams import start_servers

    total, clients = args.requests, args.clients
    sampler = LoadSampler()
    started = time.perf_counter()
    log_dir = tempfile.mkdtemp(prefix="repoctx-upstreams-")
    servers = start_servers(resolve_model(args.model).path, args.upstreams, threads=args.threads or 1,
                            n_ctx=args.window, log_dir=log_dir)
    failures: list[str] = []
    try:
        with service_over(servers[:1], args, clients=clients) as (url, _slot, keys):
            direct_s, service_s, same = asyncio.run(overhead_pairs(url, keys[0], servers[0].url,
                                                                   prompts(args.overhead_prompts), args.max_tokens,
                                                                   args.timeout))
        rows = []
        for count in sorted({1, args.upstreams}):
            with service_over(servers[:count], args, clients=clients) as (url, _slot, keys):
                import httpx

                outcomes, wall = asyncio.run(run_load(url, keys, "completions", total, clients, args.max_tokens,
                                                      args.timeout))
                metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys[0]}"}).text
                rows.append(summary(f"{count} upstream{'s' if count > 1 else ''}", outcomes, wall,
                                    server_counts(metrics, "/v1/completions")))
        failure_row, record = run_failure(servers, args, total, clients)
        rows.append(failure_row)
        typing: dict[str, list[float]] = {}
        sessions = typing_sessions(args.affinity_users, args.keystrokes, args.head_chars)
        for routing in ("least_loaded", "prefix"):
            flush(servers, args.timeout)
            with service_over(servers, args, routing=routing, clients=clients) as (url, _slot, keys):
                typing[routing] = [s * 1000 for s in asyncio.run(run_typing(url, keys, sessions, args.timeout))]
    finally:
        for server in servers:
            server.kill()
    load = sampler.stop()
    minutes = (time.perf_counter() - started) / 60

    print(f"\n`{command}`\n")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.upstreams} llama.cpp servers "
          f"(llama-cpp-python's server, {args.threads or 1} thread each, model {args.model}, n_ctx {args.window}) "
          f"on loopback, the service in this process (pool, one generation at a time per server, health checks "
          f"every {args.health_interval:g} s); max_tokens {args.max_tokens}; load average {load}; {minutes:.1f} min.\n")
    overhead = percentile(service_s, 50) / percentile(direct_s, 50) - 1
    paired = statistics.median((v - d) * 1000 for d, v in zip(direct_s, service_s))
    print("Overhead, one request at a time, the same prompts to the same server:\n")
    print("| path | requests | p50 ms | p95 ms |\n|---|---|---|---|")
    print(f"| direct to the server | {len(direct_s)} | {percentile(direct_s, 50) * 1000:.0f} "
          f"| {percentile(direct_s, 95) * 1000:.0f} |")
    print(f"| through the service | {len(service_s)} | {percentile(service_s, 50) * 1000:.0f} "
          f"| {percentile(service_s, 95) * 1000:.0f} |")
    print(f"\nservice overhead at p50: {overhead * 100:+.1f}% (target <= 5%); median paired difference "
          f"{paired:+.0f} ms; identical completions {same}/{len(direct_s)}\n")
    print(f"Load: {total} requests from {clients} clients:\n")
    print("| run | requests | completed | lost | wall s | completions/s | p50 / p95 ms | by status "
          "| server counter agrees |\n|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(load_row(row))
    one, many = rows[0]["rate"], rows[1]["rate"] if len(rows) > 2 else rows[0]["rate"]
    print(f"\nthroughput {args.upstreams} vs 1 upstream: {many / one:.2f}x")
    pool = record.get("pool", {})
    print(f"\nKilled upstream: {record.get('answered_at_kill')} answered, {record.get('inflight_at_kill')} generating "
          f"on it and {record.get('queued_at_kill')} queued in the service when it was killed; failed over before "
          f"the first token {pool.get('failovers', 0)} ({pool.get('failovers', 0) / total * 100:.1f}% of requests, "
          f"{pool.get('failovers_completed', 0)} completed elsewhere); cut mid-stream {pool.get('midstream_failures', 0)}; "
          f"refused (no upstream) {pool.get('unavailable', 0)}; restart took {record.get('restart_s', float('nan')):.1f} s, "
          f"back in use {record.get('recovery_s', float('nan')):.2f} s after it answered (health check interval "
          f"{args.health_interval:g} s), {record.get('down_s', float('nan')):.1f} s after the kill; it then served "
          f"{record.get('served_after_up')} requests. Per upstream: "
          + ", ".join(f"{n}: served {u['served']}, failed {u['failures']}" for n, u in pool.get("upstreams", {}).items()))
    print(f"\nTyping: {args.affinity_users} users x {args.keystrokes} keystrokes into {args.head_chars}-character "
          f"file heads, max_tokens 4, {args.upstreams} upstreams:\n")
    print("| routing | requests | p50 ms | p95 ms | mean ms |\n|---|---|---|---|---|")
    for routing, values in typing.items():
        print(f"| {routing} | {len(values)} | {percentile(values, 50):.0f} | {percentile(values, 95):.0f} "
              f"| {statistics.mean(values):.0f} |")

    for row in rows:
        if row["lost"] or row["requests"] != total:
            failures.append(f"{row['label']}: {row['lost']} lost, {row['requests']} of {total} finished")
        if not row["counter_agrees"]:
            failures.append(f"{row['label']}: the server's request counter disagrees with the clients'")
    if "error" in record:
        failures.append(record["error"])
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0
