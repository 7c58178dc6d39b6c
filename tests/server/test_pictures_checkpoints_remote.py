"""Pictures and checkpoints through a tracking server, on SQLite and PostgreSQL:
logged on one machine, read back, loaded and pruned from another."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from test_remote import TOKEN, ServerProcess

from labnotebook import Notebook, Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        store_url,
        tmp_path / "servers",
        env={"LABNOTEBOOK_ARTIFACTS": str(tmp_path / "server-artifacts")},
    )
    process.start()
    yield process
    process.stop(signal.SIGKILL)


def machine(url: str, home: Path) -> Notebook:
    return Notebook(
        Settings(
            url=url,
            token=TOKEN,
            home=str(home),
            flush_interval=0.05,
            retry_interval=0.1,
            capture_console="off",
            system_metrics_interval=0,
        )
    )


def test_pictures_and_checkpoints_from_another_machine(
    server: ServerProcess, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("a\nb\n")

    trainer = machine(server.url, tmp_path / "trainer")
    try:
        with trainer.start("remote") as run:
            for step, loss in enumerate([0.5, 0.1, 0.3]):
                run.log({"val/loss": loss}, step=step)
                run.save_checkpoint(model, name="model")
                run.image(np.full((2, 3), step * 100, np.uint8), "samples")
            run.note("grid", images=[np.ones((2, 2), bool)])
            run.save_checkpoint(folder, name="tokenizer")
            run.save_checkpoint({"coef": np.eye(2), "epoch": 3}, name="tree")
    finally:
        trainer.close()

    reader = machine(server.url, tmp_path / "reader")
    try:
        images = reader.artifacts(run.id, kind="image")
        assert [(a.name, a.step) for a in images] == [
            ("samples", 0),
            ("samples", 1),
            ("samples", 2),
            ("note-1", 2),
        ]
        assert images[0].meta == {"width": 3, "height": 2}
        note = reader.get_run(run.id).notes()[0]
        assert note.text == f"grid\n\n![note-1](sha256:{images[3].sha256})"

        state = reader.load_checkpoint(run.id)
        fresh = torch.nn.Linear(3, 2)
        fresh.load_state_dict(state)
        assert torch.equal(fresh.weight, model.weight)
        restored = reader.load_checkpoint(
            run.id, name="tokenizer", dest=tmp_path / "restored"
        )
        assert (restored / "vocab.txt").read_text() == "a\nb\n"
        tree = reader.load_checkpoint(run.id, name="tree")
        assert tree["epoch"] == 3 and np.array_equal(tree["coef"], np.eye(2))

        deleted = reader.prune_checkpoints(
            run.id, keep_last=1, keep_best=1, metric="val/loss"
        )
        assert [a.step for a in deleted] == [0]
        left = reader.artifacts(run.id, kind="checkpoint", name="model")
        assert [a.step for a in left] == [1, 2]
    finally:
        reader.close()
