"""``python -m labnotebook.server``: run the tracking server (see docs/server.md)."""

from __future__ import annotations

import argparse
import sys

from .._errors import LabnotebookError
from ._serve import DEFAULT_PORT, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labnotebook.server", description="Run the tracking server."
    )
    parser.add_argument("--store", default="", help="SQL store URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--token", default=None, help="write token")
    parser.add_argument("--read-token", default=None, help="read-only token")
    args = parser.parse_args(argv)

    try:
        serve(
            args.store,
            host=args.host,
            port=args.port,
            workers=args.workers,
            token=args.token,
            read_token=args.read_token,
            threads=args.threads,
        )
    except LabnotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
