"""Load test of the HTTP completion service on loopback: throughput, latency and refusals.

    python -m benchmarks.service_load --model smollm2-135m --clients 32 --requests 128 --max-tokens 8

Without ``--url`` it starts the service in this process on a free loopback port (llama.cpp,
the given model, one API key per client so per-key limits apply per client), then runs
``--clients`` concurrent clients that together send exactly ``--requests`` requests
(``/v1/completions`` by default, ``--endpoint code`` for ``/v1/code/completions`` with
client-side snippets), each with a different prompt. With ``--url`` and ``--key`` it loads a
running service instead.

Every request must be answered with an HTTP status, a completion or a refusal (429, 503):
a timeout or a dropped connection counts as lost, and the run fails if any request is lost.
For an in-process server the server's own request counter must also account for every
request. Prints a markdown table with the command line.

    python -m benchmarks.service_load --upstreams 2 --clients 16 --requests 64 --max-tokens 16

runs the service over real inference servers instead: two llama.cpp servers started here, the
service's overhead against calling one directly, 1 vs 2 servers, one killed and restarted
under load, and prefix vs least-loaded routing (`benchmarks/service_upstreams.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

from .latency import percentile

_SOURCE = Path(__file__).resolve().parents[1] / "repoctx"


def prompts(count: int) -> list[str]:
    """`count` different code prompts: heads of repoctx's own functions, cut mid-body."""
    heads: list[str] = []
    for path in sorted(_SOURCE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if line.lstrip().startswith("def ") and index + 3 < len(lines):
                heads.append("\n".join(lines[max(0, index - 4): index + 3]) + "\n")
    if not heads:
        heads = ["def f(x):\n    return "]
    # Distinct prompts (a repeat round gets a suffix comment, so no two requests are equal).
    return [heads[i % len(heads)] + (f"    # {i // len(heads)}\n" if i >= len(heads) else "") for i in range(count)]


def request_body(endpoint: str, prompt: str, max_tokens: int) -> tuple[str, dict]:
    if endpoint == "code":
        lines = prompt.split("\n")
        return "/v1/code/completions", {
            "prefix": "\n".join(lines[:-2]) + "\n", "suffix": "\n".join(lines[-2:]), "path": "bench/module.py",
            "max_tokens": max_tokens,
            "snippets": [{"path": f"bench/dep_{i}.py", "text": f"def dep_{i}(value):\n    return value + {i}\n"}
                         for i in range(4)],
        }
    return "/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}


async def run_load(url: str, keys: list[str], endpoint: str, total: int, clients: int, max_tokens: int,
                   timeout_s: float, stream: bool = False,
                   outcomes: list[tuple[str, float, int]] | None = None) -> tuple[list[tuple[str, float, int]], float]:
    """Send `total` requests from `clients` concurrent clients; (outcome, seconds, completion tokens) each.

    Streamed (``stream``, /v1/completions only): "200" when the stream ends with its finish and
    [DONE], "200+error" when it ends with an error event and [DONE] (its upstream died mid-stream),
    "lost:..." when it ends otherwise (or never gets a status)."""
    import httpx

    bodies = [request_body(endpoint, p, max_tokens) for p in prompts(total)]
    next_index = iter(range(total))
    outcomes = [] if outcomes is None else outcomes  # a list given here shows progress to other threads
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def streamed(http: httpx.AsyncClient, path: str, body: dict) -> tuple[str, int]:
        async with http.stream("POST", path, json={**body, "stream": True}) as response:
            if response.status_code != 200:
                await response.aread()
                return str(response.status_code), 0
            tokens, finished, error = 0, False, False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: "):]
                if payload == "[DONE]":
                    return ("200+error" if error else "200" if finished else "lost:no finish"), tokens
                data = json.loads(payload)
                error = error or "error" in data
                for choice in data.get("choices", []):
                    tokens += bool(choice.get("text"))
                    finished = finished or bool(choice.get("finish_reason"))
            return "lost:no [DONE]", tokens

    async def client(number: int) -> None:
        key = keys[number % len(keys)]
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            for index in next_index:
                path, body = bodies[index]
                started = time.perf_counter()
                try:
                    if stream:
                        outcome, tokens = await streamed(http, path, body)
                    else:
                        response = await http.post(path, json=body)
                        outcome = str(response.status_code)
                        tokens = 0
                        if response.status_code == 200:
                            data = response.json()
                            tokens = data.get("usage", {}).get("completion_tokens", data.get("completion_tokens", 0))
                except httpx.HTTPError as exc:  # no status: the request was lost
                    outcome, tokens = f"lost:{type(exc).__name__}", 0
                outcomes.append((outcome, time.perf_counter() - started, tokens))

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return outcomes, time.perf_counter() - started


def server_counts(metrics_text: str, route: str) -> dict[str, int]:
    counts: dict[str, int] = collections.Counter()
    for line in metrics_text.splitlines():
        if line.startswith("repoctx_http_requests_total{") and f'route="{route}"' in line:
            status = re.search(r'status="(\d+)"', line).group(1)
            counts[status] += int(float(line.rsplit(" ", 1)[1]))
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service (default: start one in this process on loopback)")
    parser.add_argument("--key", action="append", default=[], help="API key for --url (repeatable)")
    parser.add_argument("--model", default="smollm2-135m", help="model of the in-process service")
    parser.add_argument("--engine", default="llamacpp", help="engine kind of the in-process service")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = measured choice)")
    parser.add_argument("--window", type=int, default=2048, help="context window of the in-process engine")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--endpoint", choices=["completions", "code"], default="completions")
    parser.add_argument("--queue-size", type=int, default=64, help="in-process service: requests waiting per engine")
    parser.add_argument("--rate", type=float, default=0.0, help="in-process service: requests per minute per key (0 = off)")
    parser.add_argument("--timeout", type=float, default=600.0, help="client timeout per request, seconds")
    parser.add_argument("--upstreams", type=int, default=0,
                        help="start this many llama.cpp servers and run the service over them as a pool "
                             "(benchmarks/service_upstreams.py); 0 = one in-process engine")
    parser.add_argument("--health-interval", type=float, default=2.0, help="with --upstreams: health check interval")
    parser.add_argument("--overhead-prompts", type=int, default=24,
                        help="with --upstreams: prompts sent directly and through the service")
    parser.add_argument("--affinity-users", type=int, default=2, help="with --upstreams: users typing at once")
    parser.add_argument("--keystrokes", type=int, default=12, help="with --upstreams: keystrokes per user")
    parser.add_argument("--head-chars", type=int, default=1500, help="with --upstreams: file text before the cursor")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.service_load " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.upstreams:
        from .service_upstreams import run

        return run(args, command)
    route = "/v1/code/completions" if args.endpoint == "code" else "/v1/completions"

    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        outcomes, wall = asyncio.run(run_load(args.url, args.key, args.endpoint, args.requests, args.clients,
                                              args.max_tokens, args.timeout))
        counted = None
        device = args.url
    else:
        from repoctx.service.app import create_app, serve_in_thread
        from repoctx.service.security import KeyStore
        from repoctx.service.settings import ServiceSettings

        import httpx

        keys = [f"client{i:03d}-{'0123456789abcdef'}" for i in range(args.clients)]
        settings = ServiceSettings()
        settings.repoctx.engine.kind = args.engine
        settings.repoctx.engine.model = args.model
        settings.repoctx.engine.threads = args.threads
        settings.repoctx.engine.context_window = args.window
        settings.repoctx.engine.timeout_s = args.timeout
        settings.completion_cache_size = 0  # every request reaches the engine
        settings.limits.queue_size = args.queue_size
        settings.limits.queue_timeout_s = args.timeout
        settings.limits.requests_per_minute = args.rate
        settings.limits.burst = max(1, args.clients)
        app = create_app(settings, KeyStore.from_lines([f"c{i}:{k}" for i, k in enumerate(keys)]))
        print(f"starting the service with {args.model} ({args.engine}) ...", file=sys.stderr)
        with serve_in_thread(app, startup_timeout_s=600) as (url, _server):
            slot = app.state.service.slots["default"]
            device = f"{slot.model_id}, {slot.kind}, {getattr(slot.engine, 'threads', '?')} threads, window {slot.window}"
            outcomes, wall = asyncio.run(run_load(url, keys, args.endpoint, args.requests, args.clients,
                                                  args.max_tokens, args.timeout))
            metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys[0]}"}).text
            counted = server_counts(metrics, route)

    statuses = collections.Counter(outcome for outcome, _, _ in outcomes)
    ok = [seconds * 1000 for outcome, seconds, _ in outcomes if outcome == "200"]
    tokens = sum(t for _, _, t in outcomes)
    lost = sum(n for outcome, n in statuses.items() if outcome.startswith("lost"))
    by_status = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))

    print(f"\n`{command}`\n")
    print(f"service: {device}; endpoint {route}; {args.clients} clients, {args.requests} requests, "
          f"max_tokens {args.max_tokens}\n")
    print("| requests | answered | completed (200) | lost | wall s | completions/s | generated tokens/s "
          "| p50 ms | p95 ms | max ms | by status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(outcomes)} | {len(outcomes) - lost} | {len(ok)} | {lost} | {wall:.1f} | {len(ok) / wall:.2f} "
          f"| {tokens / wall:.1f} | {percentile(ok, 50):.0f} | {percentile(ok, 95):.0f} "
          f"| {max(ok) if ok else float('nan'):.0f} | {by_status} |")
    if ok:
        print(f"\nlatency of completed requests: mean {statistics.mean(ok):.0f} ms")
    failures: list[str] = []
    if len(outcomes) != args.requests:
        failures.append(f"{args.requests - len(outcomes)} requests never finished")
    if lost:
        failures.append(f"{lost} requests got no HTTP status")
    if counted is not None:
        client_side = {k: v for k, v in statuses.items() if not k.startswith("lost")}
        if counted != client_side:
            failures.append(f"the server counted {counted}, the clients saw {client_side}")
        else:
            print(f"server-side request counter agrees: {by_status}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
