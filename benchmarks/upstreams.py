"""Real OpenAI-compatible inference servers on loopback, for the service's tests and load runs.

llama-cpp-python's own server (``python -m llama_cpp.server``, its ``server`` extra) speaks the
same ``/v1/completions`` and ``/v1/models`` API as ``vllm serve``. Each `LlamaServer` is one
process serving a GGUF file on 127.0.0.1, started in a session of its own so that `kill`
(SIGKILL), `pause` (SIGSTOP) and `resume` reach that process alone; `close` always kills it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server_argv(model_path: str, port: int, threads: int = 1, n_ctx: int = 2048) -> list[str]:
    """The server's command line. ``--interrupt_requests false``: by default a new request (even a
    ``GET /v1/models`` health check) cuts the stream in progress short; the pool sends one
    generation at a time to such a server (``concurrency = 1``), so nothing needs interrupting."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--interrupt_requests", "false", "--logits_all", "false",
            "--use_mlock", "false", "--verbose", "false"]


class LlamaServer:
    def __init__(self, model_path: str, port: int | None = None, threads: int = 1, n_ctx: int = 2048,
                 log_dir: str | os.PathLike[str] | None = None) -> None:
        self.model_path = model_path
        self.port = port or free_port()
        self.threads = threads
        self.n_ctx = n_ctx
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"llama-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LlamaServer":
        """Start the process (on the same port as before, after a kill); `wait_ready` waits for it."""
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(llama_server_argv(self.model_path, self.port, self.threads, self.n_ctx),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answers(self, timeout_s: float = 5.0) -> bool:
        """Whether ``GET /v1/models`` answers 200 now."""
        try:
            with urllib.request.urlopen(f"{self.url}/v1/models", timeout=timeout_s) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout_s: float = 180.0) -> "LlamaServer":
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if not self.running:
                raise RuntimeError(f"the llama.cpp server on port {self.port} exited "
                                   f"(code {self.process.returncode if self.process else None}); "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the llama.cpp server on port {self.port} did not answer within {timeout_s:g} s; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def unread_requests(self) -> int:
        """Connections to this server holding bytes it has not read (``/proc/net/tcp``): a request
        sent to a paused server, accepted by the kernel, waits there until the server reads it."""
        count = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if int(local.rsplit(":", 1)[1], 16) == self.port and state == "01" and int(queues.split(":")[1], 16):
                count += 1
        return count

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        if self.running:
            os.kill(self.process.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the process hangs; connections are still accepted by the kernel, never answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (the process dies at once, open connections close) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    close = kill

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def start_servers(model_path: str, count: int, threads: int = 1, n_ctx: int = 2048,
                  log_dir: str | os.PathLike[str] | None = None, timeout_s: float = 180.0) -> list[LlamaServer]:
    """`count` servers started together and ready; on failure every one started is killed."""
    servers = [LlamaServer(model_path, threads=threads, n_ctx=n_ctx, log_dir=log_dir) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(timeout_s)
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers
