"""The example script that `make run` uses fills a store with everything the
dashboard shows: metrics, picture series, checkpoints, files and notes with
pictures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from labnotebook import Notebook, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_example_runs_record_everything(settings: Settings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LABNOTEBOOK_URL": settings.url,
        "LABNOTEBOOK_HOME": settings.home,
        "LABNOTEBOOK_SYSTEM_METRICS_INTERVAL": "0",
    }
    script = str(ROOT / "examples" / "train.py")
    done = subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "logged 4 example runs" in done.stdout

    again = subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "already in the store" in again.stdout

    nb = Notebook(settings)
    try:
        runs = nb.runs(experiment="examples")
        assert len(runs) == 4
        for run_id in runs["id"]:
            run = nb.get_run(run_id)
            assert run.status == "finished"
            kinds: dict[tuple[str, str], list[int | None]] = {}
            for artifact in run.artifacts():
                kinds.setdefault((artifact.kind, artifact.name), []).append(
                    artifact.step
                )
            images = kinds["image", "weights"]
            assert len(images) == 20
            assert len(kinds["image", "scores"]) == 1
            # keep_last=1 and keep_best=3 leave three or four checkpoints.
            checkpoints = kinds["checkpoint", "weights"]
            assert 3 <= len(checkpoints) <= 4
            assert max(c or 0 for c in checkpoints) == max(i or 0 for i in images)
            assert b'"lr"' in run.read_artifact("config.json")
            (note,) = run.notes()
            assert "](sha256:" in note.text
            assert len(run.history("loss")) > 100
    finally:
        nb.close()
