"""Attach throughput: one large file, and 10,000 small files, into the artifact store.

Three figures, each from the first ``attach()`` until ``flush()`` returns with the
rows in a SQLite store, each into a new, empty artifact folder (so nothing is
deduplicated):

* one large file (1 GiB; ``--size-mib`` or ``LABNOTEBOOK_BENCH_ATTACH_MIB`` change
  it), against ``shutil.copyfile`` of the same file;
* 10,000 small files of 4 KiB, as 10,000 ``attach()`` calls, against 10,000
  ``shutil.copyfile`` calls;
* the same 10,000 files as one folder, ``attach(folder)``, against
  ``shutil.copytree``.

attach() does more than a copy: it hashes every byte (sha256), and makes each
object durable with ``fsync`` before renaming it into place, where the floors
leave the bytes in the page cache; the same copies followed by an ``fsync`` of
each file are shown for reference, without a goal. A folder's files are flushed
together (one ``syncfs``). Goals: at least 0.25x the copy's rate for the large
file and for the folder, 0.05x for separate small files (an ``fsync`` per file
costs far more than copying 4 KiB). Source files are read once before the clock
starts, so every variant reads from the page cache.

    .venv/bin/python benchmarks/bench_attach.py [--quick] [--size-mib N] [--files N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from _common import Row, Table, header, median, temp_dir

from labnotebook import Notebook, Run, Settings

LARGE_GOAL = 0.25
SMALL_GOAL = 0.05
FOLDER_GOAL = 0.25
SIZE_ENV = "LABNOTEBOOK_BENCH_ATTACH_MIB"
SMALL_SIZE = 4096
MiB = 2**20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes that run in seconds (smoke test); figures are not "
        "representative",
    )
    parser.add_argument(
        "--size-mib",
        type=int,
        default=None,
        help=f"size of the large file in MiB (default 1024, or {SIZE_ENV}; 16 with "
        "--quick)",
    )
    parser.add_argument(
        "--files",
        type=int,
        default=None,
        help="number of small files (default 10,000; 500 with --quick)",
    )
    return parser.parse_args()


def make_large(path: Path, size: int) -> None:
    chunk = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            # Distinct chunks, so that no layer below can deduplicate them.
            f.write(i.to_bytes(8, "little") + chunk[8:])
        f.write(os.urandom(size % MiB))


def make_small(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        sub = folder / f"d{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{i:05d}.bin"
        path.write_bytes(os.urandom(SMALL_SIZE))
        paths.append(path)
    return paths


def warm(paths: list[Path]) -> None:
    """Read every source once, so that each variant reads from the page cache."""
    for path in paths:
        with open(path, "rb") as f:
            while f.read(MiB):
                pass


class Attacher:
    """A fresh notebook (new SQLite store, new artifact folder) per measurement."""

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def __call__(self, work: Callable[[Run], object]) -> Callable[[], object]:
        def measure() -> object:
            self.count += 1
            home = self.root / f"home{self.count}"
            notebook = Notebook(
                Settings(
                    url=f"sqlite:///{home / 'lab.db'}",
                    home=str(home),
                    exit_timeout=3600,
                    capture_console="off",
                    capture_code=False,
                    capture_environment=False,
                    system_metrics_interval=0,
                )
            )
            run = notebook.start("bench-attach")
            run.flush()
            elapsed = _timed(lambda: (work(run), run.flush()))
            run.finish()
            notebook.close()
            shutil.rmtree(home)
            return elapsed

        return measure


def copy_durably(source: Path, target: Path) -> None:
    """shutil.copyfile, then fsync: what attach() does but hashing and renaming."""
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def copy_into(root: Path, copy: Callable[[Path], object]) -> Callable[[], float]:
    counter = [0]

    def measure() -> float:
        counter[0] += 1
        target = root / f"copy{counter[0]}"
        target.mkdir()
        elapsed = _timed(lambda: copy(target))
        shutil.rmtree(target)
        return elapsed

    return measure


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int
) -> dict[str, float]:
    """Median seconds of each variant, the variants taking turns."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            elapsed = measure()
            assert isinstance(elapsed, float)
            times[name].append(elapsed)
    return {name: median(values) for name, values in times.items()}


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:.0f} MiB/s"


def files_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} files/s"


def main() -> None:
    args = parse_args()
    default_mib = 16 if args.quick else int(os.environ.get(SIZE_ENV, "1024"))
    size = (args.size_mib or default_mib) * MiB
    count, repeats = (500, 2) if args.quick else (10_000, 3)
    count = args.files or count
    header(
        "bench_attach",
        args.quick,
        f"one {size // MiB:,} MiB file; {count:,} files of {SMALL_SIZE // 1024} KiB "
        f"as {count:,} attach() calls and as one folder; SQLite store; "
        f"{repeats} repeats (median)",
    )

    table = Table("attach throughput (median)")
    with temp_dir() as root:
        large = root / "large.bin"
        make_large(large, size)
        warm([large])
        attacher = Attacher(root)
        times = interleaved(
            {
                "copy": copy_into(
                    root, lambda target: shutil.copyfile(large, target / "large")
                ),
                "copy+fsync": copy_into(
                    root, lambda target: copy_durably(large, target / "large")
                ),
                "attach": attacher(lambda run: run.attach(large)),
            },
            repeats,
        )
        large.unlink()
        ratio = times["copy"] / times["attach"]
        table.add(Row("copyfile + fsync (reference)", rate(size, times["copy+fsync"])))
        table.add(
            Row(
                f"attach() of one {size // MiB:,} MiB file",
                rate(size, times["attach"]),
                rate(size, times["copy"]) + " copyfile",
                ratio,
                f">= {LARGE_GOAL}x",
                ratio >= LARGE_GOAL,
            )
        )

        folder = root / "small"
        paths = make_small(folder, count)
        warm(paths)

        def attach_each(run: Run) -> None:
            for path in paths:
                run.attach(path)

        def copy_each(target: Path) -> None:
            for i, path in enumerate(paths):
                shutil.copyfile(path, target / f"{i}")

        def copy_each_durably(target: Path) -> None:
            for i, path in enumerate(paths):
                copy_durably(path, target / f"{i}")

        times = interleaved(
            {
                "copy each": copy_into(root, copy_each),
                "copy each+fsync": copy_into(root, copy_each_durably),
                "attach each": attacher(attach_each),
                "copytree": copy_into(
                    root, lambda target: shutil.copytree(folder, target / "tree")
                ),
                "attach folder": attacher(lambda run: run.attach(folder)),
            },
            repeats,
        )
        table.add(
            Row(
                f"{count:,} copyfile + fsync (reference)",
                files_rate(count, times["copy each+fsync"]),
            )
        )
        for what, ours, floor, floor_name, goal in (
            (
                f"{count:,} attach() calls",
                "attach each",
                "copy each",
                "copyfile",
                SMALL_GOAL,
            ),
            (
                f"attach() of a {count:,}-file folder",
                "attach folder",
                "copytree",
                "copytree",
                FOLDER_GOAL,
            ),
        ):
            ratio = times[floor] / times[ours]
            table.add(
                Row(
                    what,
                    files_rate(count, times[ours]),
                    files_rate(count, times[floor]) + f" {floor_name}",
                    ratio,
                    f">= {goal}x",
                    ratio >= goal,
                )
            )
    table.print()


if __name__ == "__main__":
    main()
