"""Log a few example runs: logistic regression on synthetic data, several settings.

    python examples/train.py            # adds the example runs once
    python examples/train.py --again    # adds another set

Uses the default store (or LABNOTEBOOK_URL). Only numpy is needed.
"""

from __future__ import annotations

import argparse
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
        run.note(
            f"**Finished** after {config['epochs']} epochs: validation accuracy "
            f"{acc:.3f}."
        )


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
