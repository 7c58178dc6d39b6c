"""Run every ``benchmarks/bench_*.py`` one after the other and print their tables.

    .venv/bin/python benchmarks/run_all.py [--quick] [NAME ...]

NAME picks benchmarks by name (``log`` or ``bench_log``); by default all run. The
scripts run one at a time, each in its own process, so that none measures while
another loads the machine. The exit code is 1 if any script failed (a crash or an
error it reported), not for a figure that missed its goal: those are shown as MISS
in the tables and counted in the summary.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[Path]:
    """The benchmark scripts to run, in name order."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if not names:
        return scripts
    by_name = {path.stem.removeprefix("bench_"): path for path in scripts}
    chosen: list[Path] = []
    for name in names:
        key = name.removesuffix(".py").removeprefix("bench_")
        if key not in by_name:
            known = ", ".join(sorted(by_name))
            sys.exit(f"no benchmark named {name!r}; the benchmarks are: {known}")
        chosen.append(by_name[key])
    return chosen


def run(script: Path, quick: bool) -> tuple[int, str, float]:
    """Run one script, echoing its output; returns exit code, output and seconds."""
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    return code, "".join(lines), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to each")
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run")
    args = parser.parse_args()

    summary: list[tuple[str, str, int, int, float]] = []
    for script in discover(args.names):
        code, output, seconds = run(script, args.quick)
        words = [line.split()[-1] for line in output.splitlines() if line.strip()]
        status = "ok" if code == 0 else f"FAILED (exit code {code})"
        summary.append(
            (script.name, status, words.count("PASS"), words.count("MISS"), seconds)
        )
        print(flush=True)

    print("== summary")
    width = max((len(row[0]) for row in summary), default=0)
    for name, status, passed, missed, seconds in summary:
        print(
            f"{name.ljust(width)}  {status}, {passed} PASS, {missed} MISS, "
            f"{seconds:.0f} s"
        )
    if any(row[1] != "ok" for row in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
