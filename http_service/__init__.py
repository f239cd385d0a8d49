"""repoctx's HTTP completion service: a thin FastAPI shell over the library (see README.md).

`create_app` builds the app from `ServiceSettings`; `main` is what ``repoctx serve`` runs.
"""

from .app import create_app, main, serve_in_thread
from .security import KeyStore
from .settings import ServiceSettings

__all__ = ["KeyStore", "ServiceSettings", "create_app", "main", "serve_in_thread"]
