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
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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
                   timeout_s: float) -> tuple[list[tuple[str, float, int]], float]:
    """Send `total` requests from `clients` concurrent clients; (outcome, seconds, completion tokens) each."""
    import httpx

    bodies = [request_body(endpoint, p, max_tokens) for p in prompts(total)]
    next_index = iter(range(total))
    outcomes: list[tuple[str, float, int]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(number: int) -> None:
        key = keys[number % len(keys)]
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            for index in next_index:
                path, body = bodies[index]
                started = time.perf_counter()
                try:
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
    args = parser.parse_args(argv)
    command = "python -m benchmarks.service_load " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    route = "/v1/code/completions" if args.endpoint == "code" else "/v1/completions"

    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        outcomes, wall = asyncio.run(run_load(args.url, args.key, args.endpoint, args.requests, args.clients,
                                              args.max_tokens, args.timeout))
        counted = None
        device = args.url
    else:
        from http_service.app import create_app, serve_in_thread
        from http_service.security import KeyStore
        from http_service.settings import ServiceSettings

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
