"""Secrets never enter context, whatever retriever would have matched them."""

from tests.retrieval_support import open_repo


def test_env_and_keys_never_appear(tmp_path):
    token = "sk_live_51HqLyjWDarjtT1zdp7dc"
    files = {
        ".env": f"STRIPE_API_KEY={token}\nDATABASE_URL=postgres://admin:hunter2@db/prod\n",
        "deploy/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n",
        "settings.py": "import os\nSTRIPE_API_KEY = os.environ['STRIPE_API_KEY']\nDATABASE_URL = os.environ['DATABASE_URL']\n",
        "pay.py": "from settings import STRIPE_API_KEY, DATABASE_URL\n\ndef charge():\n    key = STRIPE_API_KEY\n    url = DATABASE_URL<|>\n",
    }
    repo, cursors = open_repo(tmp_path, files)
    context = repo.context(cursors["pay.py"], budget=4096)
    rendered = "".join(s.text for s in context.snippets)
    assert context.snippets, "the settings module should be offered"
    assert token not in rendered and "hunter2" not in rendered and "PRIVATE KEY" not in rendered
    assert all(s.path not in (".env", "deploy/id_rsa") for s in context.snippets)
