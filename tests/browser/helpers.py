"""Starting the real tracking server and headless Chromium for the browser tests.

The benchmark ``benchmarks/bench_dashboard.py`` uses the same helpers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LABNOTEBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def build_dashboard() -> None:
    """Build the dashboard when its sources changed (scripts/build-frontend)."""
    subprocess.run([str(ROOT / "scripts" / "build-frontend")], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/api/v1/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"the server at {base} did not answer within {timeout} s")


@contextlib.contextmanager
def running_server(
    store_url: str, log_path: Path, token: str | None = None, workers: int = 1
) -> Iterator[str]:
    """Run ``python -m labnotebook.server`` on a free port; yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "labnotebook.server",
        "--store",
        store_url,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if token:
        command += ["--token", token]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, proc)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def seed_runs(store_url: str, home: Path, runs: list[dict[str, object]]) -> list[str]:
    """Log finished runs straight to the store; each dict holds ``name``,
    ``experiment``, ``params``, ``tags``, ``metrics`` ({key: [values]}), optional
    ``fields`` ([dict per step]), ``notes`` ([text]) and ``status``. Returns run ids.
    """
    from labnotebook import Notebook, Settings

    notebook = Notebook(Settings(url=store_url, home=str(home), flush_interval=0.05))
    ids: list[str] = []
    try:
        for spec in runs:
            run = notebook.start(
                str(spec["name"]),
                experiment=str(spec.get("experiment", "default")),
                params=spec.get("params") or {},
                tags=list(spec.get("tags") or []),  # type: ignore[call-overload]
            )
            metrics: dict[str, list[float]] = spec.get("metrics") or {}  # type: ignore[assignment]
            fields: list[dict[str, object]] = spec.get("fields") or []  # type: ignore[assignment]
            steps = max([len(v) for v in metrics.values()] + [len(fields)] + [0])
            for step in range(steps):
                values = {k: v[step] for k, v in metrics.items() if step < len(v)}
                extra = fields[step] if step < len(fields) else None
                run.log(values, step=step, fields=extra)
            for text in spec.get("notes") or []:  # type: ignore[attr-defined]
                run.note(str(text))
            status = str(spec.get("status", "finished"))
            run.finish(status, error=str(spec["error"]) if spec.get("error") else None)
            ids.append(run.id)
    finally:
        notebook.close()
    return ids
