"""Remote ingest: points per second from 8 client processes through the server.

Eight processes each start a run and log 10 metrics per step, all at once; the
figure is every point logged divided by the time from the common start until the
last ``finish()`` returned with its points stored. It is measured twice in the same
run, on fresh stores of the same database: through a tracking server (``python -m
labnotebook.server``, 2 workers, gunicorn) and with the clients writing straight into
the database, the floor. Goal: remote ingest at least half the direct rate.

    .venv/bin/python benchmarks/bench_remote.py [--quick]
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from _common import (
    Row,
    Table,
    fmt_rate,
    fresh_store,
    header,
    label,
    median,
    parse_args,
    store_kinds,
    temp_dir,
)

from labnotebook._store.sql import SqlStore

RATE_GOAL = 0.5
CLIENTS = 8
KEYS = 10
SERVER_WORKERS = 2

CLIENT = """
import sys, time
from labnotebook import Notebook, Settings

url, token, home, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
notebook = Notebook(Settings(url=url, token=token, home=home))
run = notebook.start(experiment="bench-remote", system_metrics=False)
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
for i in range(steps):
    x = i * 1e-3
    run.log({"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
             "m5": x, "m6": x, "m7": x, "m8": x, "m9": x})
complete = run.finish()
print("done", start, time.time(), int(complete), flush=True)
notebook.close()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK_")}


@contextlib.contextmanager
def tracking_server(store: str, folder: Path, token: str) -> Iterator[str]:
    """A server on ``store`` in a child process; yields its URL."""
    port = free_port()
    log = (folder / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labnotebook.server",
            "--store",
            store,
            "--port",
            str(port),
            "--workers",
            str(SERVER_WORKERS),
            "--token",
            token,
        ],
        env={**clean_env(), "LABNOTEBOOK_HOME": str(folder / "server-home")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log.name}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/api/v1/health", timeout=1).ok:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def ingest(url: str, token: str, folder: Path, clients: int, steps: int) -> float:
    """Seconds for ``clients`` processes to log ``steps`` steps each, all stored."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CLIENT),
                url,
                token,
                str(folder / f"client{i}"),
                str(steps),
            ],
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("a client failed to start its run")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()

    starts: list[float] = []
    ends: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        words = out.split()
        if proc.returncode != 0 or words[:1] != ["done"] or words[3] != "1":
            raise SystemExit(f"a client did not store all of its points: {out!r}")
        starts.append(float(words[1]))
        ends.append(float(words[2]))
    return max(ends) - min(starts)


def check_stored(store_url: str, clients: int, steps: int) -> None:
    store = SqlStore(store_url)
    records = store.list_runs(experiment="bench-remote")
    stored = sum(s.count for r in records for s in r.metrics.values())
    store.close()
    if len(records) != clients or stored != clients * steps * KEYS:
        raise SystemExit(f"{stored} points stored, {clients * steps * KEYS} logged")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    clients, steps, repeats = (4, 1_000, 1) if args.quick else (CLIENTS, 10_000, 2)
    points = clients * steps * KEYS
    header(
        "bench_remote",
        args.quick,
        f"{clients} client processes x {steps:,} steps x {KEYS} metrics = "
        f"{points:,} points, through a {SERVER_WORKERS}-worker server and directly, "
        f"{repeats} repeats (median)",
    )

    token = "bench-token"
    table = Table(f"points per second from {clients} processes (median)")
    for kind in store_kinds():
        remote: list[float] = []
        direct: list[float] = []
        with temp_dir() as folder:
            for _ in range(repeats):
                with fresh_store(kind, folder) as url:
                    direct.append(ingest(url, "", folder, clients, steps))
                    check_stored(url, clients, steps)
                with fresh_store(kind, folder) as url:
                    SqlStore(url).prepare()
                    with tracking_server(url, folder, token) as server:
                        remote.append(ingest(server, token, folder, clients, steps))
                    check_stored(url, clients, steps)
        rate = points / median(remote)
        floor = points / median(direct)
        table.add(Row(f"{label(kind)} direct (floor)", fmt_rate(floor)))
        table.add(
            Row(
                f"{label(kind)} through the server",
                fmt_rate(rate),
                fmt_rate(floor),
                rate / floor,
                f">= {RATE_GOAL}x",
                rate / floor >= RATE_GOAL,
            )
        )
    table.print()


if __name__ == "__main__":
    main()
