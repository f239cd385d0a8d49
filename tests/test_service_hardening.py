"""The HTTP service against careless and hostile clients, on a real uvicorn server on loopback
with a scripted engine: secrets in client text, tenants, stalled connections, lone
surrogates, what the access log holds, what /metrics shows, odd path spellings."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install 'repoctx[service]')")
httpx = pytest.importorskip("httpx", reason="the service extra is not installed (pip install 'repoctx[service]')")

from repoctx.service import security  # noqa: E402
from repoctx.service.app import create_app, serve_in_thread  # noqa: E402
from repoctx.service.security import KeyStore  # noqa: E402
from repoctx.config import ConfigError  # noqa: E402
from tests.helpers import make_repo  # noqa: E402
from tests.policy_cases import MARKERS, SECRET_PATHS, SECRET_TEXTS  # noqa: E402
from tests.test_service_plumbing import ALICE, BOB, KEYS, ScriptedEngine, auth, metric, served, settings  # noqa: E402,F401

LIB = {
    "teamlib/__init__.py": "",
    "teamlib/money.py": "def format_amount(cents: int, currency: str) -> str:\n    return f'{cents / 100:.2f} {currency}'\n",
}
CURSOR = {"path": "app/checkout.py", "prefix": "from teamlib.money import format_amount\n\ntotal = format_amount(",
          "suffix": ")\n"}


def _with_repos(tmp_path, **repos) -> object:
    """Settings with shared repositories {name: tenants}, each a copy of LIB."""
    cfg = settings()
    specs = {}
    for name, tenants in repos.items():
        root = make_repo(tmp_path / name, LIB)
        specs[name] = {"root": str(root), "tenants": tenants, "index_location": "cache"}
    cfg.update({"service": {"repos": specs}})
    cfg.repoctx.retrieval.time_limit_ms = {k: 5000.0 for k in cfg.repoctx.retrieval.time_limit_ms}
    return cfg


def _ready(client, count: int) -> None:
    deadline = time.monotonic() + 60
    while client.get("/health").json()["repos"] != {"ready": count}:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ secrets


def test_client_text_with_secrets_never_reaches_the_engine(served, tmp_path):
    client, _, engine = served(_with_repos(tmp_path, teamlib=[]))
    _ready(client, 1)
    for name, secret in SECRET_TEXTS.items():
        refused = {
            "code prefix": client.post("/v1/code/completions", headers=auth(),
                                       json={"prefix": secret + "x = ", "path": "app/a.py"}),
            "code suffix": client.post("/v1/code/completions", headers=auth(),
                                       json={"prefix": "x = ", "suffix": "\n" + secret, "path": "app/a.py"}),
            "prompt": client.post("/v1/completions", headers=auth(), json={"prompt": secret + "x = "}),
            "fim suffix": client.post("/v1/completions", headers=auth(),
                                      json={"prompt": "x = ", "suffix": secret, "path": "a.py"}),
            "context prefix": client.post("/v1/code/context", headers=auth(),
                                          json={**CURSOR, "repo": "teamlib", "prefix": secret + CURSOR["prefix"]}),
            "context text": client.get("/v1/code/context", headers=auth(),
                                       params={"repo": "teamlib", "path": "a.py", "text": secret, "line": 0, "column": 0}),
        }
        for field, answer in refused.items():
            assert answer.status_code == 422, (name, field, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "refused_secret" and "secret" in error["message"], (name, field, error)
            assert not any(marker in error["message"] for marker in MARKERS)
        snippets = [{"path": "lib/settings.py", "text": secret}, {"path": "lib/util.py", "text": "def util():\n    pass\n"}]
        kept = client.post("/v1/code/completions", headers=auth(),
                           json={"prefix": "x = ", "path": "app/a.py", "snippets": snippets})
        assert kept.status_code == 200, kept.text
        assert [s["path"] for s in kept.json()["context_used"]] == ["lib/util.py"]
        assert any("lib/settings.py" in note and "left out" in note for note in kept.json()["notes"])
    for path in SECRET_PATHS:
        named = client.post("/v1/code/completions", headers=auth(), json={"prefix": "x = ", "path": path})
        assert named.status_code == 422 and named.json()["error"]["param"] == "path", named.text
        fim = client.post("/v1/completions", headers=auth(), json={"prompt": "x = ", "suffix": "\n", "path": path})
        assert fim.status_code == 422 and fim.json()["error"]["code"] == "refused_secret"
        kept = client.post("/v1/code/completions", headers=auth(), json={
            "prefix": "x = ", "path": "app/a.py", "snippets": [{"path": path, "text": "A = 1\n"}]})
        assert kept.status_code == 200 and kept.json()["context_used"] == [], kept.text
    assert engine.prompts, "the requests that passed reached the engine"
    assert not any(marker in prompt for prompt in engine.prompts for marker in MARKERS)
    assert not any(path in prompt for prompt in engine.prompts for path in SECRET_PATHS)


def test_an_oddly_spelled_path_is_the_same_file(served, tmp_path):
    client, _, engine = served(_with_repos(tmp_path, teamlib=[]))
    _ready(client, 1)
    answers = []
    for spelling in ("app/checkout.py", "./app//checkout.py", "app/../app/checkout.py"):
        answer = client.post("/v1/code/context", headers=auth(), json={**CURSOR, "repo": "teamlib", "path": spelling})
        assert answer.status_code == 200, answer.text
        answers.append([(s["path"], s["start_line"]) for s in answer.json()["snippets"]])
        code = client.post("/v1/code/completions", headers=auth(), json={**CURSOR, "path": spelling, "max_tokens": 4})
        assert code.status_code == 200
        assert "app/checkout.py" in engine.prompts[-1] and "./app//" not in engine.prompts[-1]
    assert answers[0] == answers[1] == answers[2]
    climbing = client.post("/v1/code/completions", headers=auth(), json={**CURSOR, "path": "../../etc/passwd"})
    assert climbing.status_code == 422 and climbing.json()["error"]["code"] == "refused_outside"


# ------------------------------------------------------------------------------------ tenants


def test_no_key_may_take_the_name_of_the_keyless_user():
    with pytest.raises(ConfigError, match="reserved"):
        KeyStore.from_lines([f"alice:{ALICE}", "anonymous:anonymous-0123456789abcdef"])


def test_a_tenant_named_anonymous_gets_no_other_tenants_repository(served, tmp_path):
    # Even a key store that holds the name (built by other means than a keys file) opens nothing.
    sneaky = "anonymous-0123456789abcdef"
    keys = KeyStore([*KEYS._entries, security._Entry("anonymous", security._digest(sneaky))])
    client, _, _ = served(_with_repos(tmp_path, alicelib=["alice"]), keys=keys)
    _ready(client, 1)
    body = {**CURSOR, "repo": "alicelib"}
    assert client.post("/v1/code/context", json=body, headers=auth(ALICE)).status_code == 200
    assert client.post("/v1/code/context", json=body, headers=auth(sneaky)).status_code == 404


def test_metrics_show_a_key_its_own_tenant_and_repositories(served, tmp_path):
    cfg = _with_repos(tmp_path, alicelib=["alice"], common=[])
    cfg.metrics_admins = ["bob"]
    carol = "carol-0123456789abcdef00"
    keys = KeyStore.from_lines([f"alice:{ALICE}", f"bob:{BOB}", f"carol:{carol}"])
    client, _, _ = served(cfg, keys=keys)
    _ready(client, 2)
    for key in (ALICE, BOB, carol):
        assert client.post("/v1/completions", json={"prompt": "abcd", "max_tokens": 2}, headers=auth(key)).status_code == 200
    seen_by_alice = client.get("/metrics", headers=auth(ALICE)).text
    seen_by_carol = client.get("/metrics", headers=auth(carol)).text
    seen_by_bob = client.get("/metrics", headers=auth(BOB)).text  # an admin
    assert metric(seen_by_alice, "repoctx_prompt_tokens_total", tenant="alice") == 4
    assert 'tenant="carol"' not in seen_by_alice and 'tenant="bob"' not in seen_by_alice
    assert 'repo="alicelib"' in seen_by_alice and 'repo="common"' in seen_by_alice
    assert 'tenant="alice"' not in seen_by_carol and 'repo="alicelib"' not in seen_by_carol
    assert 'repo="common"' in seen_by_carol and metric(seen_by_carol, "repoctx_prompt_tokens_total", tenant="carol") == 4
    assert all(f'tenant="{name}"' in seen_by_bob for name in ("alice", "bob", "carol"))
    assert 'repo="alicelib"' in seen_by_bob
    assert metric(seen_by_carol, "repoctx_http_requests_total", route="/v1/completions", status="200") == 3


# ------------------------------------------------------------------------------------ connections


def test_connections_that_never_finish_their_headers_are_closed(served):
    cfg = settings(max_connections=6, header_timeout_s=1.0, keep_alive_s=1.0, body_timeout_s=1.0)
    client, server, _ = served(cfg)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    client.close()  # its idle keep-alive connection would count too
    stalled = []
    for _ in range(6):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
        stalled.append(sock)
    try:
        deadline = time.monotonic() + 30
        statuses = []
        while True:
            with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as fresh:
                statuses.append(fresh.get("/health").status_code)
            if statuses[-1] == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert statuses[-1] == 200, statuses
        for sock in stalled:
            assert sock.recv(1024) == b""  # the server closed it
        # A body that never arrives gets 408 (after its headers passed).
        with socket.create_connection((host, port), timeout=30) as slow:
            slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALICE.encode()
                         + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\": ")
            answer = slow.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        for sock in stalled:
            sock.close()


def test_a_request_head_that_outgrows_the_limit_is_refused_and_the_service_lives_on(served):
    client, server, _ = served(settings(max_header_bytes=4096))
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    for head in (b"GET /health?q=" + b"a" * 20_000, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 20_000):
        with socket.create_connection((host, port), timeout=30) as sock:
            try:
                sock.sendall(head)  # and no end of the head: the server must not buffer it all
                answer = sock.recv(4096)
            except ConnectionResetError:  # closed while the rest of the head was still on its way
                answer = b""
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert client.get("/health").status_code == 200


RAW_SURROGATE = "\\ud800"  # as JSON writes it: the six characters \ud800


@pytest.mark.parametrize("body", [
    '{"prompt": "x = %s"}', '{"prompt": "x", "suffix": "%s"}', '{"prompt": "x", "stop": ["%s"]}',
    '{"prompt": "x", "model": "%s"}', '{"prompt": "x", "user": "%s"}', '{"prompt": "x", "%s": 1}',
    '{"prompt": ["%s"]}', '{"prompt": "x", "path": "a%s.py", "suffix": ""}',
])
def test_a_lone_surrogate_is_a_422_and_the_connection_lives_on(served, body):
    client, server, _ = served()
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
    try:
        connection.request("POST", "/v1/completions", body=(body % RAW_SURROGATE).encode(), headers=headers)
        first = connection.getresponse()
        data = json.loads(first.read())
        assert first.status == 422 and "Unicode" in data["error"]["message"], data
        sock = connection.sock
        connection.request("POST", "/v1/completions", body=b'{"prompt": "x = ", "max_tokens": 4}', headers=headers)
        second = connection.getresponse()
        assert second.status == 200 and json.loads(second.read())["choices"][0]["text"]
        assert connection.sock is sock  # the same keep-alive connection
    finally:
        connection.close()


def test_code_and_context_bodies_refuse_lone_surrogates_too(served, tmp_path):
    client, _, engine = served(_with_repos(tmp_path, teamlib=[]))
    _ready(client, 1)
    raw = {
        "/v1/code/completions": ['{"prefix": "%s"}', '{"prefix": "x", "snippets": [{"path": "a.py", "text": "%s"}]}',
                                 '{"prefix": "x", "snippets": [{"path": "%s", "text": "t"}]}',
                                 '{"prefix": "x", "repo_name": "%s"}', '{"prefix": "x", "repos": ["%s"]}'],
        "/v1/code/context": ['{"repo": "teamlib", "path": "a.py", "prefix": "%s"}',
                             '{"repo": "%s", "path": "a.py", "prefix": "x"}'],
    }
    calls = len(engine.prompts)
    for route, bodies in raw.items():
        for body in bodies:
            answer = client.post(route, content=(body % RAW_SURROGATE).encode(),
                                 headers={**auth(), "Content-Type": "application/json"})
            assert answer.status_code == 422 and "Unicode" in answer.json()["error"]["message"], (route, body, answer.text)
    assert len(engine.prompts) == calls


class FailingEngine(ScriptedEngine):
    def generate(self, request, cancel=None, on_text=None):
        raise ZeroDivisionError("a bug in an engine")


def test_an_unexpected_error_is_a_json_500_and_the_connection_lives_on(served):
    _, server, _ = served(engine=FailingEngine())
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"}
    try:
        connection.request("POST", "/v1/completions", body=b'{"prompt": "x"}', headers=headers)
        first = connection.getresponse()
        data = json.loads(first.read())
        assert first.status == 500 and data["error"]["code"] == "internal_error"
        assert "ZeroDivisionError" not in data["error"]["message"]
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


# ------------------------------------------------------------------------------------ logs


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


def test_the_access_log_never_holds_code(tmp_path, capfd):
    cfg = _with_repos(tmp_path, teamlib=[])
    app = create_app(cfg, keys=KEYS, engines={"default": ScriptedEngine()})
    handler = _Records()
    access = logging.getLogger("repoctx.service.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        # uvicorn logs at "info" (as `repoctx serve` does) to its own handlers on stderr.
        with serve_in_thread(app, log_level="info") as (url, _):
            with httpx.Client(base_url=url, timeout=30) as client:
                _ready(client, 1)
                code = "def very_private_function(password_hint):"
                answer = client.get("/v1/code/context", headers=auth(),
                                    params={"repo": "teamlib", "path": "app/x.py", "prefix": code, "suffix": ""})
                assert answer.status_code == 200, answer.text
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    out, err = capfd.readouterr()
    written = "\n".join([out, err, *handler.lines])
    assert any("/v1/code/context" in line and " 200 " in line for line in handler.lines), written  # logged...
    assert "very_private_function" not in written and "password_hint" not in written  # ...without its code
