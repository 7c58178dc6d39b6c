"""Tests of the run filter language (labnotebook._query).

Every database test runs on SQLite and on PostgreSQL against the same runs, and
checks that a filter selects exactly the expected runs on both.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labnotebook import _query, _schema
from labnotebook._errors import FilterError, ValidationError
from labnotebook._query import (
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    Field,
    compile_filter,
    compile_sort,
    compile_sort_key,
    parse_field,
)

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = 1_700_000_000.0
CRASH_TIMEOUT = 60.0
T0 = 1_699_000_000.0  # 2023-11-03T08:26:40Z
INJECTION = "'; drop table runs; --"
ALL = {"r1", "r2", "r3", "r4", "r5"}

EXPERIMENTS = [
    {"id": 1, "name": "vision", "created_at": T0},
    {"id": 2, "name": "nlp", "created_at": T0},
]

RUNS: list[dict[str, Any]] = [
    {
        "id": "r1",
        "experiment_id": 1,
        "name": "resnet-a",
        "status": "finished",
        "params": {
            "lr": 0.1,
            "optim": {"name": "adam", "beta": 0.9},
            "layers": [64, 128],
            "seed": 1,
            "flag": True,
            "a.b": 5,
            "größe": 3,
            'q"k': {"x": 7},
            "big": 10**30,
        },
        "tags": ["baseline", "gpu"],
        "started_at": T0,
        "ended_at": T0 + 100,
        "heartbeat_at": T0 + 100,
        "updated_at": T0 + 100,
        "host": "gpu1",
        "command": "python train.py --lr 0.1",
    },
    {
        "id": "r2",
        "experiment_id": 1,
        "name": "resnet-b",
        "status": "failed",
        "params": {
            "lr": "0.1",
            "optim": {"name": "sgd"},
            "layers": [32],
            "flag": False,
            "seed": None,
        },
        "tags": ["gpu"],
        "started_at": T0 + 1000,
        "ended_at": T0 + 1500,
        "heartbeat_at": T0 + 1500,
        "updated_at": T0 + 1500,
        "host": "gpu2",
        "command": "python train.py",
        "error": "CUDA out of memory",
    },
    {
        "id": "r3",
        "experiment_id": 2,
        "name": "Bert",
        "status": "running",
        "params": {"lr": 0.001, "layers": {"0": 9}, "flag": "true", "tags": ["x"]},
        "tags": [],
        "started_at": NOW - 50,
        "ended_at": None,
        "heartbeat_at": NOW - 10,
        "updated_at": NOW - 10,
        "host": "cpu",
        "command": "python bert.py",
    },
    {
        "id": "r4",
        "experiment_id": 2,
        "name": "bert_large",
        "status": "running",
        "params": {},
        "tags": ["nlp"],
        "started_at": NOW - 7200,
        "ended_at": None,
        "heartbeat_at": NOW - 3600,
        "updated_at": NOW - 3600,
        "host": "cpu",
        "command": "python bert.py --large",
    },
    {
        "id": "r5",
        "experiment_id": 2,
        "name": "gpt%x",
        "status": "killed",
        "params": {
            "lr": 1,
            "0": "zero",
            "nested": {"deep": [1, [2, 3]]},
            "injection": INJECTION,
            "empty": "",
            "optim": "adam",
        },
        "tags": [INJECTION, "Baseline"],
        "started_at": T0 + 5000,
        "ended_at": T0 + 5010,
        "heartbeat_at": T0 + 5010,
        "updated_at": T0 + 5010,
        "host": "GPU1",
        "command": "",
    },
]

SERIES: list[dict[str, Any]] = [
    {"run_id": "r1", "key": "loss", "count": 10, "last": 0.5, "min": 0.1, "max": 2.0},
    {"run_id": "r1", "key": "val/acc", "count": 10, "last": 0.9, "min": 0.5, "max": 0.9},
    {
        "run_id": "r2",
        "key": "loss",
        "count": 5,
        "last": math.nan,
        "min": 0.2,
        "max": math.nan,
    },
    {
        "run_id": "r3",
        "key": "loss",
        "count": 3,
        "last": math.inf,
        "min": 0.3,
        "max": math.inf,
    },
    {"run_id": "r3", "key": "train-loss", "count": 1, "last": 1.0, "min": 1, "max": 1},
    {
        "run_id": "r5",
        "key": "loss",
        "count": 2,
        "last": -math.inf,
        "min": -math.inf,
        "max": 1.0,
    },
    {"run_id": "r5", "key": INJECTION, "count": 1, "last": 1.0, "min": 1, "max": 1},
    {"run_id": "r5", "key": "train.loss", "count": 1, "last": 4.0, "min": 4, "max": 4},
    {"run_id": "r5", "key": "empty", "count": 0, "last": None, "min": None, "max": None},
]


def _load(engine: sa.Engine) -> None:
    _schema.metadata.create_all(engine)
    defaults = {"error": None, "pid": None, "environment": None}
    series_defaults = {"last_step": None, "last_time": None}
    with engine.begin() as connection:
        connection.execute(sa.insert(_schema.experiments), EXPERIMENTS)
        connection.execute(sa.insert(_schema.runs), [defaults | run for run in RUNS])
        rows = [
            series_defaults | row | {"last_step": row["count"], "last_time": T0}
            for row in SERIES
        ]
        connection.execute(sa.insert(_schema.series), rows)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path = tmp_path_factory.mktemp("query") / "store.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    _load(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[sa.Engine]:
    server = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    name = f"lnb_query_{uuid.uuid4().hex[:12]}"
    try:
        with server.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        server.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_SERVER}: {exc}")
    engine = sa.create_engine(server.url.set(database=name))
    try:
        _load(engine)
        yield engine
    finally:
        engine.dispose()
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    fixture = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    found: sa.Engine = request.getfixturevalue(fixture)
    return found


def select_ids(engine: sa.Engine, text: str) -> set[str]:
    where = compile_filter(
        text, engine.dialect.name, now=NOW, crash_timeout=CRASH_TIMEOUT
    )
    with engine.connect() as connection:
        rows = connection.execute(sa.select(_schema.runs.c.id).where(where))
        return {row.id for row in rows}


def sorted_ids(engine: sa.Engine, field: str, *, descending: bool = False) -> list[str]:
    order = compile_sort(
        field,
        engine.dialect.name,
        descending=descending,
        now=NOW,
        crash_timeout=CRASH_TIMEOUT,
    )
    query = sa.select(_schema.runs.c.id).order_by(order, _schema.runs.c.id)
    with engine.connect() as connection:
        return [row.id for row in connection.execute(query)]


FILTERS = [
    ("", ALL),
    ("   ", ALL),
    # columns
    ('id = "r1"', {"r1"}),
    ('name = "resnet-a"', {"r1"}),
    ("name == 'resnet-a'", {"r1"}),
    ('name != "resnet-a"', ALL - {"r1"}),
    ('name <> "resnet-a"', ALL - {"r1"}),
    ('name < "a"', {"r3"}),  # byte order: upper case first
    ('name >= "bert"', ALL - {"r3"}),
    ('"resnet-a" = name', {"r1"}),
    ('"c" < name', {"r1", "r2", "r5"}),
    ('name in ["resnet-a", "Bert", "nope"]', {"r1", "r3"}),
    ('name in ("resnet-a",)', {"r1"}),
    ('name not in ["resnet-a", "Bert"]', {"r2", "r4", "r5"}),
    ("name in []", set()),
    ('host = "gpu1"', {"r1"}),
    ('command = ""', {"r5"}),
    ('command like "%--lr%"', {"r1"}),
    ('experiment = "vision"', {"r1", "r2"}),
    ('experiment != "vision"', {"r3", "r4", "r5"}),
    ('experiment in ["nlp"]', {"r3", "r4", "r5"}),
    ('experiment like "vis%"', {"r1", "r2"}),
    ("experiment is null", set()),
    ("error is null", ALL - {"r2"}),
    ("error is not null", {"r2"}),
    ('error like "%memory"', {"r2"}),
    ('error != "x"', {"r2"}),
    # status uses the status users see
    ('status = "running"', {"r3"}),
    ('status = "crashed"', {"r4"}),
    ('status in ["finished", "killed"]', {"r1", "r5"}),
    ('status != "running"', ALL - {"r3"}),
    # times and duration
    (f"started_at = {T0}", {"r1"}),
    (f"started_at > {T0}", ALL - {"r1"}),
    ('started_at < "2023-11-03T08:30:00Z"', {"r1"}),
    ('started_at < "2023-11-03T09:26:41+01:00"', {"r1"}),
    ('started_at >= "2023-11-04"', {"r3", "r4"}),
    ('started_at < "2023-11-03 08:26:41"', {"r1"}),
    ("ended_at is null", {"r3", "r4"}),
    ("ended_at is not null", {"r1", "r2", "r5"}),
    (f"ended_at > {T0}", {"r1", "r2", "r5"}),
    (f"ended_at != {T0}", {"r1", "r2", "r5"}),
    (f"updated_at >= {NOW - 10}", {"r3"}),
    (f"heartbeat_at < {NOW - 60}", ALL - {"r3"}),
    ("duration = 100", {"r1"}),
    ("duration >= 500", {"r2", "r4"}),
    ("duration = 50", {"r3"}),  # running: now - started_at
    ("duration = 3600", {"r4"}),  # crashed: last heartbeat - started_at
    ("duration in [10, 100]", {"r1", "r5"}),
    # tags
    ('tags has "gpu"', {"r1", "r2"}),
    ('"gpu" in tags', {"r1", "r2"}),
    ('"gpu" not in tags', {"r3", "r4", "r5"}),
    ('not tags has "gpu"', {"r3", "r4", "r5"}),
    ('tags has "baseline"', {"r1"}),
    ('tags has "Baseline"', {"r5"}),
    ('tags has "gp"', set()),
    # params: numbers match numbers only
    ("params.lr = 0.1", {"r1"}),
    ("params.lr == 1", {"r5"}),
    ("params.lr = 1.0", {"r5"}),
    ("params.lr = 1e0", {"r5"}),
    ("params.lr < 0.5", {"r1", "r3"}),
    ("params.lr > 1e-3", {"r1", "r5"}),
    ("params.lr >= .001", {"r1", "r3", "r5"}),
    ("params.lr != 0.1", {"r3", "r5"}),
    ("params.lr > -0.5", {"r1", "r3", "r5"}),
    ("0.01 < params.lr", {"r1", "r5"}),
    # strings match strings only
    ('params.lr = "0.1"', {"r2"}),
    ('params.lr != "0.1"', set()),
    ('params.lr like "0%"', {"r2"}),
    ('params.optim = "adam"', {"r5"}),
    ('params.optim.name = "adam"', {"r1"}),
    ('params.optim.name != "adam"', {"r2"}),
    ('params.optim.name in ["adam", "sgd"]', {"r1", "r2"}),
    ('params.optim.name not in ["adam"]', {"r2"}),
    ('params.optim.name < "b"', {"r1"}),
    ("params.optim.beta >= 0.9", {"r1"}),
    ('params.empty = ""', {"r5"}),
    # booleans match booleans only
    ("params.flag = true", {"r1"}),
    ("params.flag = TRUE", {"r1"}),
    ("params.flag = false", {"r2"}),
    ("params.flag != true", {"r2"}),
    ('params.flag = "true"', {"r3"}),
    ("params.seed = 1", {"r1"}),
    ("params.seed = true", set()),
    ("params.flag = 1", set()),
    # mixed lists
    ('params.lr in [0.1, "0.1"]', {"r1", "r2"}),
    ("params.lr in [1, 0.001]", {"r3", "r5"}),
    ('params.lr not in [0.1, "x"]', {"r2", "r3", "r5"}),
    ("params.lr not in [0.1]", {"r3", "r5"}),
    ("params.flag in [true, false]", {"r1", "r2"}),
    ("params.seed in [null]", {"r2", "r3", "r4", "r5"}),
    ("params.seed in [1, null]", ALL),
    ("params.seed not in [null]", {"r1"}),
    ("params.lr not in []", {"r1", "r2", "r3", "r5"}),
    # null and missing
    ("params.seed is null", {"r2", "r3", "r4", "r5"}),
    ("params.seed = null", {"r2", "r3", "r4", "r5"}),
    ("params.seed is not null", {"r1"}),
    ("params.seed != null", {"r1"}),
    ("params.lr is null", {"r4"}),
    ("params.optim is not null", {"r1", "r2", "r5"}),
    ("params.nope > 0", set()),
    ("params.nope != 0", set()),
    ("not params.nope = 0", ALL),
    ("not params.lr > 0.01", {"r2", "r3", "r4"}),
    ("not (params.lr > 0.01 or params.lr < 0.01)", {"r2", "r4"}),
    # paths: lists, indices, quoted keys
    ("params.layers.0 = 64", {"r1"}),
    ("params.layers.1 = 128", {"r1"}),
    ("params.layers.0 < 100", {"r1", "r2"}),
    ('params.layers."0" = 9', {"r3"}),
    ("params.layers.`0` = 9", {"r3"}),
    ('params."0" = "zero"', {"r5"}),
    ("params.0 = 'zero'", set()),
    ('params."a.b" = 5', {"r1"}),
    ("params.`a.b` = 5", {"r1"}),
    ("params.a.b = 5", set()),
    ('params."größe" = 3', {"r1"}),
    ("params.'q\"k'.x = 7", {"r1"}),
    ('params."q\\"k".x = 7', {"r1"}),
    ("params.nested.deep.1.0 = 2", {"r5"}),
    ("params.nested.deep.0 = 1", {"r5"}),
    ("params.big > 1e29", {"r1"}),
    ("params.big = 1000000000000000000000000000000", {"r1"}),
    ("params.tags has 'x'", {"r3"}),
    # has on list params
    ("params.layers has 64", {"r1"}),
    ("params.layers has 64.0", {"r1"}),
    ("64 in params.layers", {"r1"}),
    ("32 not in params.layers", {"r1"}),
    ('params.layers has "64"', set()),
    ("params.layers has 9", set()),  # an object is not a list
    ("params.nested.deep has 1", {"r5"}),
    ("params.nested.deep has 2", set()),
    ("params.optim has 'adam'", set()),
    # like and ilike
    ('name like "resnet%"', {"r1", "r2"}),
    ('name like "resnet-_"', {"r1", "r2"}),
    ('name like "bert%"', {"r4"}),
    ('name ilike "bert%"', {"r3", "r4"}),
    ('name ILIKE "BERT%"', {"r3", "r4"}),
    ('name not like "resnet%"', {"r3", "r4", "r5"}),
    ('name not ilike "bert%"', {"r1", "r2", "r5"}),
    ('name like "%\\%%"', {"r5"}),
    ('name like "gpt\\%x"', {"r5"}),
    ('name like "gpt\\_x"', set()),
    ('name like "bert\\_large"', {"r4"}),
    ('name like "[b]%"', set()),
    ('host ilike "gpu1"', {"r1", "r5"}),
    ('host like "gpu*"', set()),
    ('params.optim.name like "a%"', {"r1"}),
    # metrics: numbers, NaN never matches, a missing metric never matches
    ("metrics.loss < 1", {"r1", "r5"}),
    ("metrics.loss.last < 1", {"r1", "r5"}),
    ("metrics.loss > 1", {"r3"}),
    ("metrics.loss != 0.5", {"r3", "r5"}),
    ("metrics.loss = 0.5", {"r1"}),
    ("metrics.loss is null", {"r2", "r4"}),
    ("metrics.loss is not null", {"r1", "r3", "r5"}),
    ("not metrics.loss < 1", {"r2", "r3", "r4"}),
    ("metrics.loss.max > 1.5", {"r1", "r3"}),
    ("metrics.loss.max < 1.5", {"r5"}),
    ("metrics.loss.max != 2", {"r3", "r5"}),
    ("metrics.loss.min < 0.25", {"r1", "r2", "r5"}),
    ("metrics.loss.count >= 5", {"r1", "r2"}),
    ("metrics.loss.count in [2, 3]", {"r3", "r5"}),
    ("metrics.loss.last_step = 10", {"r1"}),
    (f"metrics.loss.last_time = {T0}", {"r1", "r2", "r3", "r5"}),
    ("metrics.val/acc > 0.8", {"r1"}),
    ("metrics.val/acc.max >= 0.9", {"r1"}),
    ("metrics.train-loss = 1", {"r3"}),
    ('metrics."train.loss" = 4', {"r5"}),
    ("metrics.`train.loss`.max = 4", {"r5"}),
    ("metrics.empty is null", ALL),
    ("metrics.empty.count = 0", {"r5"}),
    ("metrics.nope is null", ALL),
    ("metrics.nope < 100", set()),
    # boolean structure, precedence and keywords in any case
    ('status = "finished" or status = "killed"', {"r1", "r5"}),
    ('tags has "gpu" and params.lr = 0.1', {"r1"}),
    ('tags has "gpu" AND NOT params.lr = 0.1', {"r2"}),
    ('name = "Bert" or name = "gpt%x" and params.lr = 1', {"r3", "r5"}),
    ('(name = "Bert" or name = "gpt%x") and params.lr = 1', {"r5"}),
    ('not not name = "Bert"', {"r3"}),
    ('((name = "Bert"))', {"r3"}),
    ("not (metrics.loss < 1 or params.lr is null)", {"r2", "r3"}),
]


@pytest.mark.parametrize(("text", "expected"), FILTERS)
def test_filter_selects_runs(engine: sa.Engine, text: str, expected: set[str]) -> None:
    assert select_ids(engine, text) == expected
