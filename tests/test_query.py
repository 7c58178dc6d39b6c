"""Tests of the run filter language (labnotebook._query).

Every database test runs on SQLite and on PostgreSQL against the same runs, and
checks that a filter selects exactly the expected runs on both.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

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

POSTGRES_SERVER = sa.engine.make_url(
    os.environ.get("LABNOTEBOOK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
).set(drivername="postgresql+psycopg")
NOW = 1_700_000_000.0
CRASH_TIMEOUT = 60.0
T0 = 1_699_000_000.0  # 2023-11-03T08:26:40Z
INJECTION = "'; drop table runs; --"
ALL = {"r1", "r2", "r3", "r4", "r5"}
SQL_DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}

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
            "city": "École",
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
            "": 1,
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
    {
        "run_id": "r1",
        "key": "val/acc",
        "count": 10,
        "last": 0.9,
        "min": 0.5,
        "max": 0.9,
    },
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
    {
        "run_id": "r5",
        "key": "empty",
        "count": 0,
        "last": None,
        "min": None,
        "max": None,
    },
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
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({exc}). Start it or "
            "point LABNOTEBOOK_TEST_PG at a server.",
            pytrace=False,
        )
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
    ('params."" = 1', {"r2"}),
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
    # not like selects text that does not match; other values never match
    ('params.optim not like "b%"', {"r5"}),
    ('params.optim.name not like "a%"', {"r2"}),
    ('error not like "%disk%"', {"r2"}),
    ('params.lr not ilike "x%"', {"r2"}),
    # ilike folds A-Z only, the same on both databases
    ('params.city ilike "ÉCOLE"', {"r1"}),
    ('params.city ilike "école"', set()),
    ('params.city like "É%"', {"r1"}),
    ('params.city = "\u00c9cole"', {"r1"}),
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


EXTRA_FILTERS = [
    # casts are guarded: text that is not a number never reaches a cast
    ("params.optim > 0", set()),
    ("params.injection < 5", set()),
    ('params.lr < "a"', {"r2"}),
    # an index reads lists only, a quoted key objects only
    ("params.layers.0 = 9", set()),
    ('params.layers."0" = 64', set()),
    # null in lists, times as ISO text in lists
    (f"ended_at in [null, {T0 + 100}]", {"r1", "r3", "r4"}),
    (
        'started_at in ["2023-11-03T08:26:40Z", "2023-11-03T08:43:20+00:00"]',
        {"r1", "r2"},
    ),
    ('metrics.loss.last_time >= "2023-11-03"', {"r1", "r2", "r3", "r5"}),
    ("name = null", set()),
    ("experiment is not null", ALL),
]


@pytest.mark.parametrize(("text", "expected"), EXTRA_FILTERS)
def test_filter_edge_cases(engine: sa.Engine, text: str, expected: set[str]) -> None:
    assert select_ids(engine, text) == expected


SORTS = [
    ("name", ["r3", "r4", "r5", "r1", "r2"], ["r2", "r1", "r5", "r4", "r3"]),
    ("started_at", ["r1", "r2", "r5", "r4", "r3"], ["r3", "r4", "r5", "r2", "r1"]),
    ("ended_at", ["r1", "r2", "r5", "r3", "r4"], ["r5", "r2", "r1", "r3", "r4"]),
    ("duration", ["r5", "r3", "r1", "r2", "r4"], ["r4", "r2", "r1", "r3", "r5"]),
    ("status", ["r4", "r2", "r1", "r5", "r3"], ["r3", "r5", "r1", "r2", "r4"]),
    ("experiment", ["r3", "r4", "r5", "r1", "r2"], ["r1", "r2", "r3", "r4", "r5"]),
    # numbers numerically, then strings, then booleans; missing last
    ("params.lr", ["r3", "r1", "r5", "r2", "r4"], ["r2", "r5", "r1", "r3", "r4"]),
    ("params.flag", ["r3", "r2", "r1", "r4", "r5"], ["r1", "r2", "r3", "r4", "r5"]),
    ("params.optim", ["r5", "r1", "r2", "r3", "r4"], ["r5", "r1", "r2", "r3", "r4"]),
    (
        'params."q\\"k".x',
        ["r1", "r2", "r3", "r4", "r5"],
        ["r1", "r2", "r3", "r4", "r5"],
    ),
    # NaN sorts as a missing value on both databases; infinities at the ends
    ("metrics.loss", ["r5", "r1", "r3", "r2", "r4"], ["r3", "r1", "r5", "r2", "r4"]),
    (
        "metrics.loss.max",
        ["r5", "r1", "r3", "r2", "r4"],
        ["r3", "r1", "r5", "r2", "r4"],
    ),
    (
        "metrics.loss.count",
        ["r5", "r3", "r2", "r1", "r4"],
        ["r1", "r2", "r3", "r5", "r4"],
    ),
]


@pytest.mark.parametrize(("field", "ascending", "descending"), SORTS)
def test_sort(
    engine: sa.Engine, field: str, ascending: list[str], descending: list[str]
) -> None:
    assert sorted_ids(engine, field) == ascending
    assert sorted_ids(engine, field, descending=True) == descending


def test_sort_key_is_a_plain_expression(engine: sa.Engine) -> None:
    key = compile_sort_key(
        "params.lr", engine.dialect.name, now=NOW, crash_timeout=CRASH_TIMEOUT
    )
    where = compile_filter(
        "params.lr is not null and not params.lr = '0.1'",
        engine.dialect.name,
        now=NOW,
        crash_timeout=CRASH_TIMEOUT,
    )
    query = sa.select(_schema.runs.c.id).where(where).order_by(key.desc())
    with engine.connect() as connection:
        assert [row.id for row in connection.execute(query)] == ["r5", "r1", "r3"]


def test_sort_by_tags_is_refused() -> None:
    with pytest.raises(FilterError, match="cannot be sorted by tags"):
        compile_sort_key("tags", "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)


@pytest.mark.parametrize("field", ["nope", "params", "metrics.loss.avg", "name <"])
def test_sort_by_unknown_field_is_refused(field: str) -> None:
    with pytest.raises(FilterError):
        compile_sort_key(field, "postgresql", now=NOW, crash_timeout=CRASH_TIMEOUT)


# Injection: user text is always bound, never part of the SQL.

INJECTIONS = [
    (f'name = "{INJECTION}"', set()),
    (f'params.injection = "{INJECTION}"', {"r5"}),
    (f'params.injection like "{INJECTION}"', {"r5"}),
    (f'params."{INJECTION}" = 1', set()),
    (f"params.`{INJECTION}` is null", ALL),
    (f'params."{INJECTION}".x."\\")--" is null', ALL),
    (f'params.optim."{INJECTION}" in ["a", 1, true]', set()),
    (f'metrics."{INJECTION}" = 1', {"r5"}),
    (f'metrics."{INJECTION}".max is null', ALL - {"r5"}),
    (f'tags has "{INJECTION}"', {"r5"}),
    (f'"{INJECTION}" in tags', {"r5"}),
    (f'experiment = "{INJECTION}"', set()),
    (f'status in ["finished", "crashed"] or name = "{INJECTION}"', {"r1", "r4"}),
    ('name = "x\'); DELETE FROM runs; --"', set()),
]


@pytest.mark.parametrize(("text", "expected"), INJECTIONS)
def test_injection_is_inert(engine: sa.Engine, text: str, expected: set[str]) -> None:
    assert select_ids(engine, text) == expected
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(_schema.runs))
        assert count.scalar_one() == len(RUNS)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize(("text", "expected"), INJECTIONS)
def test_user_text_is_never_in_the_sql(
    dialect: str, text: str, expected: set[str]
) -> None:
    where = compile_filter(text, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)
    sql_dialect = SQL_DIALECTS[dialect]
    sql = str(sa.select(_schema.runs.c.id).where(where).compile(dialect=sql_dialect))
    assert "drop" not in sql.lower()
    assert "delete" not in sql.lower()
    assert "--" not in sql


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_sort_key_binds_its_path(dialect: str) -> None:
    key = compile_sort_key(
        f'params."{INJECTION}"', dialect, now=NOW, crash_timeout=CRASH_TIMEOUT
    )
    sql_dialect = SQL_DIALECTS[dialect]
    assert "drop" not in str(key.compile(dialect=sql_dialect)).lower()


# Errors name the problem, its column and the fix.

ERRORS = [
    # syntax: the column of the offending token, and what was expected
    ("params.lr <", 12, "expected a value (a number, a quoted string"),
    ("params.lr < and", 13, "expected a value"),
    ("a = 1 b", 7, "expected 'and', 'or' or the end after '1', found 'b'"),
    ('(name = "x"', 12, "expected ')'"),
    ('name = "x")', 11, "no matching '('"),
    ('name = "abc', 8, "unterminated quoted text"),
    ("name ~ 3", 6, "expected an operator"),
    ("name", 5, "expected an operator"),
    ("name is", 8, "expected 'null' or 'not null' after 'is'"),
    ("name not", 9, "expected 'in', 'like' or 'ilike' after 'not'"),
    ('name in "x"', 9, "expected a list such as [1, 2]"),
    ("name in [1 2]", 12, "expected ',' or ']' after '1', found '2'"),
    ("x in tags", 6, '"x" in tags'),
    ("params.", 8, "expected a key"),
    ("params.a..b = 1", 10, "expected a key"),
    ("params.größe = 1", 10, 'params."größe"'),
    ('name = "x" && y = 1', 12, "write 'and' instead of '&&'"),
    ("name = 1 || y = 1", 10, "write 'or' instead of '||'"),
    ('name = "x" and or y = 1', 16, "found the keyword 'or'"),
    ("and", 1, "found the keyword 'and'"),
    ("= 3", 1, "expected a field"),
    # fields
    ("lr > 0.1", 1, "did you mean params.lr or metrics.lr?"),
    ('stauts = "x"', 1, "did you mean status?"),
    ("param.lr = 1", 1, "write params (plural)"),
    ("nope = 1", 1, "Fields are id, name, status"),
    ("params = 1", 1, "params needs a key"),
    ("metrics > 1", 1, "metrics needs a key"),
    ("metrics.loss.avg > 1", 1, "unknown metric summary 'avg'"),
    ("metrics.a.b.c > 1", 1, 'metrics."a.b.c"'),
    ('metrics.loss."max" > 1', 1, "unknown metric summary 'max'"),
    ("name.x = 1", 1, "name has no parts"),
    ('tags.x has "a"', 1, "tags has no parts"),
    # types
    ("tags < 3", 8, 'use tags has "x"'),
    ('tags in ["a"]', 10, 'use tags has "x"'),
    ("tags is null", 1, "never null"),
    ("tags has 3", 10, 'quote the tag: tags has "3"'),
    ('name has "x"', 1, 'name like "%x%"'),
    ('"x" in name', 8, "work on tags and on list params"),
    ('metrics.loss has "x"', 1, "work on tags and on list params"),
    ("name = 3", 8, 'quote the value: name = "3"'),
    ('metrics.loss = "a"', 16, "metrics.loss is a number; compare it with a number"),
    ('duration < "1h"', 12, "duration > 3600"),
    ('started_at > "yesterday"', 14, 'ISO date such as "2024-05-01"'),
    ("params.flag < true", 13, "can only be compared with = or !="),
    ("params.x < null", 12, "use params.x is null or params.x is not null"),
    ('status = "runing"', 10, "statuses are running, finished, failed, killed"),
    ('status in ["ok"]', 12, "unknown status 'ok'"),
    ("name like 3", 11, 'name like "resnet%"'),
    ('metrics.loss like "a"', 19, "metrics.loss holds a number"),
    ('started_at like "2024%"', 17, "started_at holds a time"),
    # literals
    ('name = "\\q"', 9, "unknown escape '\\q'"),
    ("params.x = 1e999", 12, "out of range"),
    ("params.x = -1e-999", 12, "out of range"),
    ('name = "a\u0000"', 8, "NUL"),
    ('name = "a\\u0000"', 8, "NUL"),
    ('params."\u0000" = 1', 8, "NUL"),
    ("params.`\x00` = 1", 8, "NUL"),
    ('name = "\ud800"', 8, "lone surrogate"),
    ('name = "\\ud800"', 8, "lone surrogate"),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS)
def test_errors_name_the_problem_and_the_column(
    text: str, column: int, message: str
) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text, "postgresql", now=NOW, crash_timeout=CRASH_TIMEOUT)
    error = caught.value
    assert message in error.message
    assert error.column == column
    assert error.expression == text
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)


def test_error_renders_a_pointer() -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter("params.lr <", "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    assert str(caught.value).splitlines()[1:] == ["  params.lr <", "             ^"]


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValidationError, match="'sqlite' or 'postgresql'"):
        compile_filter("", "mysql", now=NOW, crash_timeout=CRASH_TIMEOUT)


# Limits


def test_length_limit() -> None:
    longest = "name = " + '"' + "x" * (MAX_FILTER_LENGTH - 9) + '"'
    assert len(longest) == MAX_FILTER_LENGTH
    compile_filter(longest, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    with pytest.raises(FilterError, match="MAX_FILTER_LENGTH") as caught:
        compile_filter(longest + " ", "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    assert str(MAX_FILTER_LENGTH) in caught.value.message


def test_term_limit() -> None:
    most = " or ".join(f"params.x = {i}" for i in range(MAX_FILTER_TERMS))
    compile_filter(most, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    too_many = most + " or params.x = -1"
    with pytest.raises(FilterError, match="MAX_FILTER_TERMS") as caught:
        compile_filter(too_many, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    assert caught.value.column == too_many.rindex("params.x") + 1


def test_list_values_count_as_terms() -> None:
    values = ", ".join(str(i) for i in range(MAX_FILTER_TERMS))
    compile_filter(
        f"params.x in [{values}]", "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT
    )
    with pytest.raises(FilterError, match="MAX_FILTER_TERMS"):
        compile_filter(
            f"params.x in [{values}, 1]",
            "sqlite",
            now=NOW,
            crash_timeout=CRASH_TIMEOUT,
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not " * 1000 + 'name = "x"', "nests more than"),
        ("(name = 'x' or " * 200 + "name = 'y'" + ")" * 200, "nests more than"),
        ("(" * 4000, "expected a field"),
    ],
)
def test_deep_nesting_fails_cleanly(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(text, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)


def test_redundant_parentheses_do_not_nest() -> None:
    text = "(" * 2000 + 'name = "x"' + ")" * 2000
    compile_filter(text, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)


# Fields


FIELDS = [
    ("name", Field("column", ("name",), None, "text", "name")),
    ("started_at", Field("column", ("started_at",), None, "time", "started_at")),
    ("duration", Field("column", ("duration",), None, "number", "duration")),
    ("tags", Field("tags", (), None, "tags", "tags")),
    (
        "params.optim.lr",
        Field("param", ("optim", "lr"), None, "json", "params.optim.lr"),
    ),
    ("params.layers.0", Field("param", ("layers", 0), None, "json", "params.layers.0")),
    ('params."0"', Field("param", ("0",), None, "json", 'params."0"')),
    ("params.`a.b`", Field("param", ("a.b",), None, "json", 'params."a.b"')),
    ("params . lr", Field("param", ("lr",), None, "json", "params.lr")),
    ("params.and", Field("param", ("and",), None, "json", 'params."and"')),
    ("metrics.loss", Field("metric", ("loss",), "last", "number", "metrics.loss")),
    (
        "metrics.loss.last",
        Field("metric", ("loss",), "last", "number", "metrics.loss"),
    ),
    (
        "metrics.val/acc.max",
        Field("metric", ("val/acc",), "max", "number", "metrics.val/acc.max"),
    ),
    (
        'metrics."train.loss".min',
        Field("metric", ("train.loss",), "min", "number", 'metrics."train.loss".min'),
    ),
    (
        "metrics.loss.last_time",
        Field("metric", ("loss",), "last_time", "time", "metrics.loss.last_time"),
    ),
    ("metrics.max", Field("metric", ("max",), "last", "number", "metrics.max")),
    ("metrics.007", Field("metric", ("007",), "last", "number", 'metrics."007"')),
    ("params.a-b/c", Field("param", ("a-b/c",), None, "json", "params.a-b/c")),
    (
        'params."\\ud83d\\ude00"',
        Field("param", ("\U0001f600",), None, "json", 'params."\U0001f600"'),
    ),
]


@pytest.mark.parametrize(("text", "expected"), FIELDS)
def test_parse_field(text: str, expected: Field) -> None:
    field = parse_field(text)
    assert field == expected
    assert parse_field(field.text) == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no field given"),
        ("  ", "no field given"),
        ("name = 1", "expected the end after 'name', found '='"),
        ("lr", "did you mean params.lr"),
        ("metrics.loss.mean", "unknown metric summary"),
    ],
)
def test_parse_field_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_field(text)
    assert message in caught.value.message


def test_every_column_field_compiles() -> None:
    for name in _query.COLUMN_FIELDS:
        for dialect in SQL_DIALECTS:
            compile_sort_key(name, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)
            compile_filter(
                f"{name} is null", dialect, now=NOW, crash_timeout=CRASH_TIMEOUT
            )


# Properties: any text fails cleanly; any filter selects the same runs on both
# databases.

VOCABULARY = [
    "name", "status", "tags", "params", "metrics", "params.lr", "metrics.loss.max",
    "params.layers.0", "params.\"a.b\"", "experiment", "duration", "started_at",
    ".", "=", "==", "!=", "<", "<=", ">", ">=", "<>", "in", "not", "and", "or", "is",
    "null", "true", "false", "has", "like", "ilike", "(", ")", "[", "]", ",", "0",
    "-1.5e3", ".5", "'x'", '"y"', "`z`", '"\\u00e9"', '"2024-05-01"', "'", '"', "\\",
    "@", "1e999", "1e-999", "99999999999999999999999", '"\\u0000"', "'\\ud800'",
    '"\\ud83d\\ude00"', "params.x", "metrics.007", "=",
]  # fmt: skip


def _runs_cleanly(engines: list[sa.Engine], text: str) -> None:
    """Run ``text`` as a filter: it selects runs or raises FilterError, nothing else."""
    for engine in engines:
        error: FilterError | None = None
        try:
            select_ids(engine, text)
        except FilterError as exc:
            error = exc
        if error is not None:
            assert error.message
            assert error.column is None or 1 <= error.column <= len(text) + 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_fails_cleanly(
    sqlite_engine: sa.Engine, postgres_engine: sa.Engine, text: str
) -> None:
    _runs_cleanly([sqlite_engine, postgres_engine], text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=12), st.sampled_from([" ", ""]))
def test_token_soup_fails_cleanly(
    sqlite_engine: sa.Engine,
    postgres_engine: sa.Engine,
    words: list[str],
    separator: str,
) -> None:
    _runs_cleanly([sqlite_engine, postgres_engine], separator.join(words))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_fields_fail_cleanly(text: str) -> None:
    for dialect in SQL_DIALECTS:
        with contextlib.suppress(FilterError):
            compile_sort_key(text, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)


FIELD_NAMES = [
    "id", "name", "status", "experiment", "host", "command", "error", "started_at",
    "ended_at", "duration", "tags", "params.lr", "params.optim", "params.optim.name",
    "params.layers", "params.layers.0", 'params.layers."0"', "params.flag",
    "params.seed", "params.nope", 'params."0"', "params.`a.b`", 'params."größe"',
    "params.big", "params.nested.deep", "metrics.loss", "metrics.loss.max",
    "metrics.loss.min", "metrics.loss.count", "metrics.val/acc", "metrics.nope",
]  # fmt: skip
VALUES = [
    "0", "1", "0.1", "'0.1'", "-1", "1e30", "0.5", "64", "100", f"{T0}", "'adam'",
    "'sgd'", "''", "true", "false", "null", "'resnet-a'", "'Bert'", "'gpu'",
    "'finished'", "'crashed'", "'2023-11-03'", "'vision'", "'x'",
]  # fmt: skip
PATTERNS = ["'%a%'", "'r%'", "'%'", "'_ert%'", "'B%'", "'%\\_%'", "'gpu_'"]


@st.composite
def predicates(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(FIELD_NAMES))
    value = draw(st.sampled_from(VALUES))
    values = ", ".join(draw(st.lists(st.sampled_from(VALUES), max_size=3)))
    operator = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    form = draw(st.integers(0, 9))
    return [
        f"{field} {operator} {value}",
        f"{value} {operator} {field}",
        f"{field} in [{values}]",
        f"{field} not in ({values})",
        f"{field} has {value}",
        f"{value} not in {field}",
        f"{field} is null",
        f"{field} is not null",
        f"{field} like {draw(st.sampled_from(PATTERNS))}",
        f"{field} not ilike {draw(st.sampled_from(PATTERNS))}",
    ][form]


filters = st.recursive(
    predicates(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=4,
)


def _outcome(engine: sa.Engine, text: str) -> set[str] | str:
    try:
        return select_ids(engine, text)
    except FilterError as exc:
        return exc.message


@settings(max_examples=250, deadline=None)
@given(filters)
def test_both_databases_select_the_same_runs(
    sqlite_engine: sa.Engine, postgres_engine: sa.Engine, text: str
) -> None:
    assert _outcome(sqlite_engine, text) == _outcome(postgres_engine, text)


def test_filters_and_sorts_work_in_a_joined_query(engine: sa.Engine) -> None:
    """Stores select runs joined with their experiment; subqueries must not merge."""
    dialect = engine.dialect.name
    joined = _schema.runs.join(
        _schema.experiments,
        _schema.runs.c.experiment_id == _schema.experiments.c.id,
    )
    with engine.connect() as connection:
        for text, expected in FILTERS + EXTRA_FILTERS + INJECTIONS:
            where = compile_filter(text, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)
            query = sa.select(_schema.runs.c.id).select_from(joined).where(where)
            assert {row.id for row in connection.execute(query)} == expected, text
        for field, ascending, _ in SORTS:
            order = compile_sort(field, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)
            query = (
                sa.select(_schema.runs.c.id, _schema.experiments.c.name)
                .select_from(joined)
                .order_by(order, _schema.runs.c.id)
            )
            assert [row.id for row in connection.execute(query)] == ascending, field


# The user reference (docs/filter-language.md) stays true to the code.

DOC = Path(__file__).parent.parent / "docs" / "filter-language.md"


def _doc_filters() -> list[str]:
    """Every filter line of the doc's ``text`` blocks, without trailing comments."""
    found: list[str] = []
    for block in re.findall(r"```text\n(.*?)```", DOC.read_text(), re.DOTALL):
        for line in block.splitlines():
            if line.startswith(("$", "#", " ")) or not line.strip():
                continue
            found.append(re.sub(r"\s+# .*$", "", line))
    return found


def _doc_error_rows() -> list[tuple[str, str]]:
    errors = DOC.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \|$", errors, re.MULTILINE)
    return [(text, html.unescape(message)) for text, message in rows]


@pytest.mark.parametrize("text", _doc_filters())
def test_doc_examples_compile(text: str) -> None:
    for dialect in SQL_DIALECTS:
        compile_filter(text, dialect, now=NOW, crash_timeout=CRASH_TIMEOUT)


@pytest.mark.parametrize(("text", "message"), _doc_error_rows())
def test_doc_error_examples_are_the_real_messages(text: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(text, "sqlite", now=NOW, crash_timeout=CRASH_TIMEOUT)
    for part in message.split(" ... "):
        assert part.removesuffix(" ...") in caught.value.message


def test_doc_lists_every_field_summary_and_limit() -> None:
    doc = DOC.read_text()
    for name in [*_query.COLUMN_FIELDS, "tags"]:
        assert f"| `{name}` |" in doc, name
    for summary in _query.SUMMARIES:
        assert f"`{summary}`" in doc, summary
    assert f"{MAX_FILTER_LENGTH} characters" in doc
    assert f"| {MAX_FILTER_TERMS} (`MAX_FILTER_TERMS`)" in doc
    assert f"{_query._MAX_DEPTH} levels" in doc
