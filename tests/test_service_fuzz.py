"""Hypothesis-driven requests against the real HTTP service on loopback (scripted engine, one
shared repository): random JSON of every type and size, bodies shaped like the API's with
values of the wrong types, random unicode with lone surrogates (as JSON escapes and as raw
bytes), bodies that are not UTF-8 or not JSON, random routes, methods, query strings and
headers, bodies over the size limit. Every request must get an answer below 500 on a
keep-alive connection the server never drops unannounced, and the service must still be
healthy and complete normally afterwards.

CI runs `FUZZ_REQUESTS` requests from a fixed seed (about a minute on two cores); set
``REPOCTX_FUZZ_REQUESTS=N`` and ``REPOCTX_FUZZ_RANDOM=1`` for a longer, freshly random run.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from urllib.parse import quote_from_bytes

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from repoctx.service.app import create_app, serve_in_thread  # noqa: E402
from tests.helpers import make_repo  # noqa: E402
from tests.test_service_plumbing import ALICE, BOB, KEYS, ScriptedEngine  # noqa: E402
from tests.test_service_plumbing import settings as service_settings  # noqa: E402

FUZZ_REQUESTS = int(os.environ.get("REPOCTX_FUZZ_REQUESTS", "2000"))
REQUESTS_PER_EXAMPLE = 4
MAX_BODY = 64 * 1024
MAX_URL = 8 * 1024

ROUTES = ["/v1/completions", "/v1/code/completions", "/v1/code/context", "/health", "/v1/models", "/metrics"]
FIELDS = ["prompt", "suffix", "prefix", "path", "language", "snippets", "text", "start_line", "end_line", "source",
          "max_tokens", "temperature", "stop", "stream", "stream_options", "n", "echo", "logprobs", "best_of", "model",
          "repos", "repo", "repo_name", "budget", "long_context", "line", "column", "user"]

# -- strategies -------------------------------------------------------------------------------

lone = st.sampled_from(["\ud800", "\udfff", "\udc00x", "a\ud83d", "\ud83d\ude00"])  # the last is a valid pair
characters = st.one_of(st.characters(), st.characters(codec="utf-8"), st.sampled_from(list("\n\r\t\x00 ({[\"'\\.:")))
plain_text = st.text(characters, max_size=40)
texts = st.one_of(
    plain_text,
    st.lists(st.one_of(plain_text, lone), max_size=6).map("".join),
    st.tuples(st.sampled_from(["x = 1\n", "é", "😀", "\x00", "def f():\n    return "]), st.integers(1, 4000)).map(
        lambda pair: pair[0] * pair[1]),
    st.sampled_from(["", ".env", "./a//b.py", "../../etc/passwd", "/abs/x.py", "keys/server.pem", "a.py",
                     "-----BEGIN PRIVATE KEY-----\nMIIE\n", "AKIAZ7VQ3XK4PLM2RT6N", "postgres://u:p4ss@h/db"]),
)
numbers = st.one_of(st.integers(), st.integers(-5, 600), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 2**63, -(2**63), 1e308, 0.5]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(texts, inner, max_size=5)), max_leaves=20)
snippet = st.fixed_dictionaries({"path": texts, "text": texts},
                                optional={"start_line": numbers, "end_line": numbers, "source": texts})
shaped = st.dictionaries(st.sampled_from(FIELDS), st.one_of(json_values, st.lists(snippet, max_size=4), texts, numbers),
                         max_size=8)
FITTING = {  # bodies shaped like each route's, with values of any kind
    "/v1/completions": st.fixed_dictionaries(
        {"prompt": st.one_of(texts, st.lists(texts, max_size=2))},
        optional={"suffix": texts, "max_tokens": st.one_of(st.integers(1, 16), numbers), "stop": st.lists(texts, max_size=3),
                  "stream": st.booleans(), "path": texts, "temperature": numbers, "model": texts}),
    "/v1/code/completions": st.fixed_dictionaries(
        {"prefix": texts},
        optional={"suffix": texts, "path": texts, "max_tokens": st.integers(1, 16), "snippets": st.lists(snippet, max_size=4),
                  "repos": st.sampled_from([["teamlib"], ["teamlib", "teamlib"], ["nope"]]), "budget": numbers,
                  "language": texts, "repo_name": texts}),
    "/v1/code/context": st.fixed_dictionaries(
        {"repo": st.sampled_from(["teamlib", "teamlib", "nope"]), "path": texts},
        optional={"prefix": texts, "suffix": texts, "text": texts, "line": numbers, "column": numbers, "budget": numbers}),
}


@st.composite
def bodies(draw, route: str) -> bytes | None:
    fitting = FITTING.get(route, json_values)
    kind = draw(st.sampled_from(["fitting"] * 10 + ["shaped", "shaped", "json", "json", "bytes", "broken", "broken",
                                                    "huge", "none"]))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "huge":
        return b'{"prompt": "' + b"x" * draw(st.integers(MAX_BODY - 50, MAX_BODY + 5000)) + b'"}'
    value = draw({"shaped": shaped, "json": json_values, "fitting": fitting, "broken": fitting}[kind])
    data = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    raw = data.encode("utf-8", "surrogatepass")  # lone surrogates as raw bytes when not escaped
    if kind == "broken":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw


def _query(params: dict) -> str:
    def part(value) -> str:
        return quote_from_bytes(str(value).encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{part(key)}={part(value)}" for key, value in params.items())


@st.composite
def requests(draw) -> tuple[str, str, dict[str, str], bytes | None]:
    # Mostly the routes that take text, now and then any route or any path at all.
    pick = draw(st.integers(0, 9))
    route = draw(st.sampled_from(ROUTES[:3]) if pick < 7 else st.sampled_from(ROUTES) if pick < 9 else
                 texts.map(lambda t: "/" + t))
    path = quote_from_bytes(route.encode("utf-8", "surrogatepass"), safe="/")
    usual = "GET" if route in ROUTES[3:] else "POST"
    method = draw(st.sampled_from([usual] * 25 + ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    if route == "/v1/code/context" and method == "GET":  # its cursor as a query string
        path += "?" + _query(draw(FITTING[route]))
    elif draw(st.integers(0, 3)) == 0:
        path += "?" + _query(draw(st.dictionaries(st.one_of(st.sampled_from(FIELDS), texts), scalars, max_size=6)))
    key = draw(st.sampled_from([ALICE] * 12 + [BOB, "wrong-key-0123456789", ""]))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content_type = draw(st.sampled_from(["application/json", "application/json", "text/plain", None,
                                         "application/json; charset=latin-1"]))
    if content_type:
        headers["Content-Type"] = content_type
    # A head over max_header_bytes is refused by the HTTP parser, which closes the connection
    # while the client still writes (tested on its own in test_service_hardening): keep under it.
    path = path[:MAX_URL]
    return method, path, headers, draw(bodies(route))


# -- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("fuzz-repo"), {
        "teamlib/__init__.py": "",
        "teamlib/money.py": "def format_amount(cents: int) -> str:\n    return f'{cents / 100:.2f}'\n",
    })
    cfg = service_settings(requests_per_minute=0, max_concurrent_per_key=0, max_body_bytes=MAX_BODY)
    cfg.update({"service": {"repos": {"teamlib": {"root": str(root), "index_location": "cache"}}}})
    engine = ScriptedEngine(text="value\n")
    app = create_app(cfg, keys=KEYS, engines={"default": engine})
    with serve_in_thread(app) as (url, server):
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=url, timeout=30) as client:
            while client.get("/health").json()["repos"] != {"ready": 1}:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield host, port, engine


class Connection:
    """One keep-alive connection; a drop the server did not announce (Connection: close) is a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.statuses: Counter[int] = Counter()

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> int:
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (http.client.HTTPException, OSError) as exc:
            self.conn.close()  # the next example starts on a fresh connection
            raise AssertionError(f"the server dropped the connection unannounced ({type(exc).__name__}: {exc}) "
                                 f"at {method} {path[:80]}") from exc
        self.statuses[response.status] += 1
        if (response.getheader("connection") or "").lower() == "close":
            self.conn.close()  # announced: a new connection for the next request
        return response.status


def test_random_requests_never_get_a_5xx_and_the_service_stays_healthy(service):
    host, port, engine = service
    connection = Connection(host, port)
    failures: list[tuple[int, tuple]] = []

    @settings(max_examples=max(1, FUZZ_REQUESTS // REQUESTS_PER_EXAMPLE), deadline=None, database=None,
              derandomize=not os.environ.get("REPOCTX_FUZZ_RANDOM"), print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(batch=st.lists(requests(), min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
    def fuzz(batch):
        for request in batch:
            status = connection.send(*request)
            if status >= 500:
                failures.append((status, request))
            assert status < 500, (status, request)

    fuzz()
    sent = sum(connection.statuses.values())
    print(f"\n{sent} requests: " + ", ".join(f"{code}: {count}" for code, count in sorted(connection.statuses.items())))
    assert sent >= FUZZ_REQUESTS and not failures
    assert connection.statuses[200] >= FUZZ_REQUESTS // 20, connection.statuses  # not everything was refused
    # Still healthy, and a normal request still completes on the same connection.
    assert connection.send("GET", "/health", {}, None) == 200
    body = json.dumps({"prefix": "from teamlib.money import format_amount\nx = ", "repos": ["teamlib"],
                       "max_tokens": 8}).encode()
    headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
    assert connection.send("POST", "/v1/code/completions", headers, body) == 200
