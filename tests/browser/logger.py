"""A training process for the browser tests: logs one run to a store, step by step.

    python tests/browser/logger.py STORE_URL HOME NAME STEPS_PER_TICK STOP_FILE

It logs ``loss`` and ``acc`` every 0.1 s until STOP_FILE exists, then finishes the run.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import labnotebook as lab


def main() -> None:
    url, home, name, per_tick, stop_file = sys.argv[1:6]
    lab.init(url, home=home, flush_interval=0.1)
    run = lab.start(name, experiment="live", params={"lr": 0.01}, tags=["live"])
    step = 0
    deadline = time.monotonic() + 120
    while not Path(stop_file).exists() and time.monotonic() < deadline:
        for _ in range(int(per_tick)):
            run.log(loss=1 / (1 + step / 100), acc=1 - math.exp(-step / 200))
            step += 1
        time.sleep(0.1)
    run.finish()
    lab.current().close()


if __name__ == "__main__":
    main()
