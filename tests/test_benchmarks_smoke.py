"""Every benchmark script still runs: each ``benchmarks/bench_*.py --quick``.

The quick sizes say nothing about performance, so no figure is checked here, only
that the script exits cleanly and prints its result table (a header with the
figure, floor, ratio and goal columns, and at least one row judged PASS or MISS).
Each script runs on SQLite and on PostgreSQL, at ``LABNOTEBOOK_TEST_PG`` when set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    server = os.environ.get("LABNOTEBOOK_TEST_PG")
    if server:
        env.setdefault("LABNOTEBOOK_BENCH_PG", server)
    return env


def test_benchmarks_are_found() -> None:
    assert SCRIPTS, f"no bench_*.py in {BENCHMARKS}"


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_quick_run(script: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=230,
    )

    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    headers = [line.split() for line in lines if line.startswith("figure")]
    assert headers, f"{script.name} printed no result table:\n{proc.stdout}"
    for column in ("floor", "ratio", "goal"):
        assert any(column in words for words in headers), (
            f"the table of {script.name} has no {column!r} column:\n{proc.stdout}"
        )
    judged = [line for line in lines if line.rstrip().endswith(("PASS", "MISS"))]
    assert judged, f"{script.name} judged no figure PASS or MISS:\n{proc.stdout}"


def test_run_all_rejects_an_unknown_name() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "no-such-benchmark"],
        capture_output=True,
        text=True,
    )

    assert proc.returncode != 0
    assert "no-such-benchmark" in proc.stderr
    assert "log" in proc.stderr
