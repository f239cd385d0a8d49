from __future__ import annotations

import pytest

from repoctx.config import WorkspaceConfig
from repoctx.secrets import find_secret, is_secret_path, looks_like_secret, matches_any, path_matches

PATTERNS = WorkspaceConfig().secret_patterns


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.local",
        "config/.env.production",
        "deploy/id_rsa",
        "home/.ssh/id_rsa.pub",
        "id_ed25519",
        "certs/server.pem",
        "certs/SERVER.PEM",
        "tls/private.key",
        ".netrc",
        "infra/terraform.tfstate",
        "prod.tfvars",
        "aws/credentials",
        "credentials/service.json",
        "app/secrets.yaml",
        ".ENV",
    ],
)
def test_secret_paths(path: str) -> None:
    assert is_secret_path(path, PATTERNS)


@pytest.mark.parametrize(
    "path",
    [
        "src/env.py",
        "src/environment.ts",
        "docs/keys.md",
        "src/keyboard.py",
        "lib/credentials_helper.py",
        "src/secret_santa/game.py",
    ],
)
def test_innocent_paths(path: str) -> None:
    assert not is_secret_path(path, PATTERNS)


def test_patterns_match_directories_and_anchors() -> None:
    # A pattern without a slash matches any component, so a whole directory.
    assert path_matches("a/node_cache/x.py", "node_cache")
    assert not path_matches("a/node_cache_x.py", "node_cache")
    # Anchored patterns match from the root only.
    assert path_matches("docs/internal/a.md", "docs/internal")
    assert path_matches("docs/internal/a.md", "/docs/internal/")
    assert not path_matches("x/docs/internal/a.md", "docs/internal")
    # Directory-only patterns do not match a file of that name.
    assert not path_matches("a/build", "build/")
    assert path_matches("a/build/out.js", "build/")
    # ** crosses directories, * does not.
    assert path_matches("gen/a/b/c.py", "gen/**/*.py")
    assert path_matches("gen/c.py", "gen/**/*.py")
    assert not path_matches("gen/a/c.py", "gen/*.py")
    assert path_matches("a/b/c.txt", "**/c.txt")
    assert path_matches("a/b/c.txt", "a/**")
    assert path_matches("x1.py", "x[0-9].py") and not path_matches("xa.py", "x[0-9].py")
    assert path_matches("xa.py", "x[!0-9].py")
    assert matches_any("a/b.py", ["*.js", "*.py"]) and not matches_any("a/b.py", ["*.js", "# *.py", ""])
    assert path_matches("A/B.PY", "*.py", ignore_case=True) and not path_matches("A/B.PY", "*.py")


PEM = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAz3R1bqXw0k2Q9a5hD7ZQm1Y9mP3Yx0y2qX7L8d1oT2mGmN2H
-----END RSA PRIVATE KEY-----
"""


@pytest.mark.parametrize(
    "text",
    [
        PEM,
        "key = '''-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU='''",
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n"}',
        "-----BEGIN EC PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
        "aws_access_key_id = AKIAZ7VQ3XK4PLM2RT6N\n",
        "AWS_SECRET_ACCESS_KEY=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\n",
        'API_KEY = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"\n',
        'const config = { apiKey: "Zk39Qm02LxVb77Ny51Hw", region: "eu" };',
        '"client_secret": "GOCSPX-4hJ2kL9mN0pQ3rS6tU8vW1xY"',
        "export GITHUB_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5\n",
        "token := `xoxb-2048-3072-aBcDeFgHiJkLmNoP`",
        "password: 8Hq2!zX9@pL4#mN7$vB1\n",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"',
        'GOOGLE = "AIzaSyD4x7Qm9Lp2Zk8Rt5Vb3Nw1Hy6Jc0Fe2Gs"',
    ],
)
def test_secret_content(text: str) -> None:
    assert looks_like_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "def tokenize(text):\n    return text.split()\n",
        'API_KEY = os.environ["API_KEY"]\n',
        "api_key = settings.OPENAI_API_KEY_VALUE\n",
        'API_KEY = "your-api-key-here-please"\n',
        "API_KEY=${API_KEY_FROM_VAULT}\n",
        'password = "hunter2"\n',
        'token_pattern = "[A-Za-z0-9_]{16,}"\n',
        "secret = compute_secret(seed, rounds=1000)\n",
        "AWS example: AKIAIOSFODNN7EXAMPLE\n",
        'tokens = "aaaaaaaaaaaaaaaaaaaaaaaa"\n',
        "# read the private key from the keystore; never commit it\n",
        "max_tokens: 64\ncontext_window: 8192\n",
    ],
)
def test_innocent_content(text: str) -> None:
    assert not looks_like_secret(text)


LONG_KEY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 8  # 400 base64 characters


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('DATABASE_URL = "postgres://app:password@db.internal:5432/prod"\n', "a password in a URL"),
        ("redis://:Zk39Qm02LxVb@cache:6379/0", "a password in a URL"),
        # a real host that merely contains "example" is not a documentation host
        ('URL = "https://deploy:Zk39Qm02LxVb@example.co.uk/hook"\n', "a password in a URL"),
        ('URL = "https://deploy:Zk39Qm02LxVb@myexample.com/hook"\n', "a password in a URL"),
        ('URL = "https://deploy:Zk39Qm02LxVb@ci.testing.io/hook"\n', "a password in a URL"),
        ('URL = "https://deploy:Zk39Qm02LxVb@[2001:db8::1]/hook"\n', "a password in a URL"),
        ('KEY = ("-----BEGIN RSA "\n       "PRIVATE KEY-----\\nMIIEowIBAAKCAQEAz3R1")\n', "a private key"),
        ('key = "-----BEGIN " + "PRIVATE KEY-----" + body\n', "a private key"),
        (f'private_key = "{LONG_KEY}"\n', "a credential assigned to a secret-sounding name"),
        (f'{{"private_key": "{LONG_KEY[:300]}\\n{LONG_KEY[300:]}"}}', "a credential assigned to a secret-sounding name"),
        (f"PRIVATE_KEY={LONG_KEY}\n", "a credential assigned to a secret-sounding name"),
    ],
)
def test_secrets_the_detector_used_to_miss(text: str, kind: str) -> None:
    assert find_secret(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        'url = f"postgres://{user}:{password}@{host}/{name}"\n',
        'DSN = "postgresql://%s:%s@%s/%s" % (user, pw, host, db)\n',
        "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db/app\n",
        "see http://localhost:8080/docs and git+ssh://git@github.com/org/repo\n",
        "# e.g. 'ftp://foo:bar@ftp.example.org/'\n",  # marshmallow's URL validator documents its syntax
        '["http://:p@d.test", "http://u:@d.test"],\n',  # werkzeug's URL tests: RFC 2606's .test
        'httpx.URL("https://u:p@[invalid!]//evilHost/path?t=w#tw")\n',  # httpx's: a malformed host, reserved name
        '"""Connect with ``https://user:s3cr3tPa55@api.example.com/v1``."""\n',
        "# -----------------------------------------------------------\nBEGIN = 1\n",
        f'thumbnail = "{LONG_KEY}"\n',
    ],
)
def test_lookalikes_of_those_secrets_are_not_secrets(text: str) -> None:
    assert find_secret(text) is None


def test_repoctx_own_sources_and_docs_are_not_taken_for_secrets() -> None:
    # Documentation of the detector (examples of what it finds) must not hide the detector itself.
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [p for folder in ("repoctx", "lsp_server", "http_service", "benchmarks", "docs")
             for p in (root / folder).rglob("*") if p.suffix in (".py", ".md", ".scm")
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]  # not caches of others' code
    files += [root / "README.md"]
    flagged = {str(p.relative_to(root)): find_secret(p.read_text(errors="replace")) for p in files}
    assert {path: kind for path, kind in flagged.items() if kind} == {}
