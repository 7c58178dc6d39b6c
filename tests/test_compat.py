"""The original LabNotebook's calls keep working through the new API."""

from __future__ import annotations

from typing import Any

import labnotebook


def test_original_calls_map_onto_runs(lab: Any) -> None:
    url = labnotebook.current().store.url
    labnotebook.initialize(url)
    xp = labnotebook.start_experiment(model_desc={"layers": 3, "lr": 0.01})
    for t in range(5):
        labnotebook.step_experiment(
            xp,
            t,
            trainloss=1.0 / (t + 1),
            trainacc=0.1 * t,
            valacc=0.05 * t,
            epoch=t // 2,
            custom_fields={"note": f"step {t}"},
        )
    labnotebook.step_experiment(xp, 5, custom_fields={"only": "fields"})
    labnotebook.end_experiment(xp, final_trainloss=0.1, final_valacc=0.9)

    run = labnotebook.get_run(xp.id)
    assert run.status == "finished"
    assert run.params == {"layers": 3, "lr": 0.01}
    frame = labnotebook.history(xp.id)
    assert set(frame.columns) == {
        "trainloss",
        "trainacc",
        "valacc",
        "epoch",
        "final_trainloss",
        "final_valacc",
    }
    assert frame.loc[4, "trainloss"] == 0.2
    assert frame.loc[6, "final_valacc"] == 0.9
    fields = labnotebook.current().store.step_fields(xp.id)
    assert fields[0][2] == {"note": "step 0"}
    assert fields[5][2] == {"only": "fields"}
