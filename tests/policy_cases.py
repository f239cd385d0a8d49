"""Texts and paths every shell must treat alike (see `repoctx.policy`): the CLI, the language
server and the HTTP service each have a test that feeds them these."""

PEM_BLOCK = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "-----END PRIVATE KEY-----\n"
)
AWS_KEY_ID = "AKIAZ7VQ3XK4PLM2RT6N"

SECRET_TEXTS = {
    "private key": f"SERVER_KEY = '''{PEM_BLOCK}'''\n",
    "aws key id": f"aws_access_key_id = '{AWS_KEY_ID}'\n",
    "url password": 'DATABASE_URL = "postgres://app:s3cr3t-Pa55@db.internal/prod"\n',
}
"""Python source that holds a credential: a cursor file holding one is refused, a snippet is left out."""

MARKERS = ("MIIEvQIBADANBgkq", AWS_KEY_ID, "s3cr3t-Pa55")
"""Substrings of those secrets that must never reach an engine."""

SECRET_PATHS = (".env", "keys/server.pem", "deploy/id_rsa")
"""Paths that are secret by name (the default `WorkspaceConfig.secret_patterns`)."""
