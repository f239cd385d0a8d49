"""Opening llama.cpp models without touching the process's standard streams.

llama-cpp-python keeps a quiet load (``verbose=False``) quiet by pointing file descriptors
1 and 2 at /dev/null for the whole process while the model loads. Every other thread loses
its output meanwhile: the language server, which speaks JSON-RPC on descriptor 1, lost the
answers and notifications it wrote during a load (the client waited for them forever), and
the HTTP service and the CLI lost their log lines. So models are opened "verbose" (no
descriptor is redirected), with llama.cpp's native log routed to the ``repoctx.llama``
logger at debug level and the few lines llama-cpp-python prints itself during the load
caught; afterwards the object is made quiet again.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import threading
from typing import Any

__all__ = ["open_llama"]

log = logging.getLogger("repoctx.llama")

_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.DEBUG, 5: logging.DEBUG}
_lock = threading.Lock()
_callback: Any = None  # kept referenced: llama.cpp calls it from native code


def _route_native_log() -> None:
    """Send llama.cpp's own log (loading details, timings) to the ``repoctx.llama`` logger."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if log.isEnabledFor(_LEVELS.get(level, logging.DEBUG)):
            log.log(_LEVELS.get(level, logging.DEBUG), "%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _callback = callback


def open_llama(model_path: str, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(model_path, **kwargs)`` that leaves file descriptors 1 and 2 alone.

    Raises what `Llama` raises (ImportError when llama-cpp-python is missing)."""
    from llama_cpp import Llama

    kwargs.pop("verbose", None)
    with _lock:
        _route_native_log()
        # Only llama-cpp-python's own prints (system information, model metadata) go to
        # sys.stderr here; swapping the Python object redirects no file descriptor.
        with contextlib.redirect_stderr(io.StringIO()):
            llama = Llama(model_path=model_path, verbose=True, **kwargs)
    llama.verbose = False
    return llama
