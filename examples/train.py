"""Log a few example runs: logistic regression on synthetic data, several settings.

Each run logs its loss at every step and its validation accuracy per epoch, a
picture of the weights per epoch (a series with a step slider on the run page),
a checkpoint of the weights per epoch (the best three by accuracy are kept), its
configuration as a file, and a closing note with a histogram taped in.

    python examples/train.py            # adds the example runs once
    python examples/train.py --again    # adds another set

Uses the default store (or LABNOTEBOOK_URL). Only numpy is needed.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

import labnotebook as lab

EXPERIMENT = "examples"


def make_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 20))
    w = rng.normal(size=20)
    y = (x @ w + rng.normal(scale=2.0, size=2000) > 0).astype(float)
    return x, y


def train(config: dict[str, float | int | str], x: np.ndarray, y: np.ndarray) -> None:
    rng = np.random.default_rng(int(config["seed"]))
    split = int(len(x) * 0.8)
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
    w = np.zeros(x.shape[1])
    lr = float(config["lr"])

    name = f"lr={lr:g} batch={config['batch']}"
    tags = ["example", str(config["schedule"])]
    with lab.start(name, experiment=EXPERIMENT, params=config, tags=tags) as run:
        step = 0
        for epoch in range(int(config["epochs"])):
            order = rng.permutation(split)
            for start in range(0, split, int(config["batch"])):
                idx = order[start : start + int(config["batch"])]
                p = 1 / (1 + np.exp(-x_train[idx] @ w))
                grad = x_train[idx].T @ (p - y_train[idx]) / len(idx)
                rate = lr
                if config["schedule"] == "cosine":
                    total = int(config["epochs"]) * math.ceil(
                        split / int(config["batch"])
                    )
                    rate = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                w -= rate * grad
                loss = -np.mean(
                    y_train[idx] * np.log(p + 1e-12)
                    + (1 - y_train[idx]) * np.log(1 - p + 1e-12)
                )
                run.log(loss=loss, fields={"lr": rate, "epoch": epoch})
                step += 1

            val_p = 1 / (1 + np.exp(-x_val @ w))
            acc = float(np.mean((val_p > 0.5) == y_val))
            run.log({"val/acc": acc}, step=step - 1)
            run.image(weights_picture(w), "weights", step=step - 1)
            run.save_checkpoint(w, step=step - 1, name="weights")
        run.prune_checkpoints(
            "weights", keep_last=1, keep_best=3, metric="val/acc", mode="max"
        )
        run.attach(json.dumps(config, indent=2).encode(), name="config.json")
        run.note(
            f"**Finished** after {config['epochs']} epochs: validation accuracy "
            f"{acc:.3f}. Validation scores, by true class:",
            images={"scores": score_histogram(val_p, y_val)},
        )


def weights_picture(w: np.ndarray) -> np.ndarray:
    """The weights as a 4x5 grid of squares: red positive, blue negative."""
    scale = max(float(np.abs(w).max()), 1e-12)
    grid = (w / scale).reshape(4, 5)
    rgb = np.stack([grid.clip(0, 1), np.zeros_like(grid), (-grid).clip(0, 1)], axis=-1)
    return np.kron(rgb, np.ones((24, 24, 1)))


def score_histogram(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Two bar histograms of the scores (class 0 above, class 1 below), as an image."""
    height, bins = 60, 40
    picture = np.ones((2 * height + 4, bins * 4, 3))
    for row, cls in enumerate((0.0, 1.0)):
        counts, _ = np.histogram(scores[labels == cls], bins=bins, range=(0, 1))
        bars = (counts / max(int(counts.max()), 1) * (height - 1)).astype(int)
        base = row * (height + 4) + height
        colour = (0.2, 0.4, 0.8) if cls == 0 else (0.85, 0.35, 0.2)
        for i, bar in enumerate(bars):
            picture[base - bar : base, i * 4 : i * 4 + 3] = colour
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--again", action="store_true", help="add another set")
    args = parser.parse_args()

    lab.init()
    if not args.again and not lab.runs(experiment=EXPERIMENT, limit=1).empty:
        print("example runs are already in the store; use --again to add more")
        return

    x, y = make_data(seed=0)
    for i, (lr, batch, schedule) in enumerate(
        [
            (0.5, 32, "constant"),
            (0.1, 32, "cosine"),
            (0.05, 64, "constant"),
            (1.0, 128, "cosine"),
        ]
    ):
        config = {
            "lr": lr,
            "batch": batch,
            "schedule": schedule,
            "epochs": 20,
            "seed": i,
            "model": {"kind": "logistic", "features": 20},
        }
        train(config, x, y)
    print(f"logged 4 example runs to {lab.current().store.url}")


if __name__ == "__main__":
    main()
