"""A local TensorBoard process for looking at runs from code (tests, screenshots)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    """GET, or POST a JSON body (the HParams plugin's API takes its requests that way)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


@contextmanager
def tensorboard(logdir: Path, runs: int, timeout: float = 60) -> Iterator[str]:
    """Serve ``logdir`` on 127.0.0.1 until it lists at least ``runs`` runs; yields its URL.

    The process is stopped on leaving, whatever happened inside.
    """
    port = free_port()
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"]
    url = f"http://127.0.0.1:{port}"
    # Its output goes to a file, not a pipe: a full pipe would stall it.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"tensorboard exited with {proc.returncode}: {log.read()}")
                try:
                    if len(get_json(f"{url}/data/runs", timeout=2)) >= runs:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tensorboard on {logdir} listed fewer than {runs} runs")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
