"""The factory's configuration, the dashboard's files, and serve()'s safeguards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from servertools import TOKEN, make_app

from labnotebook._errors import ValidationError
from labnotebook.server import ServerConfig, create_app, dashboard, serve
from labnotebook.server._serve import is_loopback


def test_config_from_env_then_mapping(tmp_path: Path) -> None:
    env = {
        "LABNOTEBOOK_STORE": f"sqlite:///{tmp_path}/a.db",
        "LABNOTEBOOK_TOKEN": "t1",
        "LABNOTEBOOK_MAX_PAGE_SIZE": "50",
        "LABNOTEBOOK_CORS_ORIGINS": "https://a.example, https://b.example",
    }
    config = ServerConfig.from_env(env, max_page_size=20)
    assert config.store.endswith("a.db")
    assert config.token == "t1"
    assert config.max_page_size == 20
    assert config.cors_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"read_token": "r"}, "without a write token"),
        ({"token": "same", "read_token": "same"}, "different"),
        ({"max_page_size": 0}, "positive integer"),
        ({"store": "http://elsewhere:8788"}, "needs a SQL store"),
        ({"colour": "red"}, "unknown server setting"),
    ],
)
def test_bad_config_is_refused(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ServerConfig.from_env(
            {"LABNOTEBOOK_STORE": f"sqlite:///{tmp_path}/a.db"}, **values
        )
    with pytest.raises(ValidationError):
        create_app(
            values
            if "store" in values
            else {**values, "store": f"sqlite:///{tmp_path}/a.db"}
        )


@pytest.mark.parametrize("raw", ["many", "0", "-5"])
def test_bad_env_value_names_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ValidationError, match="LABNOTEBOOK_MAX_BUCKETS"):
        ServerConfig.from_env(
            {
                "LABNOTEBOOK_STORE": f"sqlite:///{tmp_path}/a.db",
                "LABNOTEBOOK_MAX_BUCKETS": raw,
            }
        )


def test_an_argument_wins_over_a_bad_env_value(tmp_path: Path) -> None:
    env = {
        "LABNOTEBOOK_STORE": f"sqlite:///{tmp_path}/a.db",
        "LABNOTEBOOK_CRASH_TIMEOUT": "-1",
    }
    with pytest.raises(ValidationError, match="LABNOTEBOOK_CRASH_TIMEOUT='-1' must"):
        ServerConfig.from_env(env)
    assert ServerConfig.from_env(env, crash_timeout=30).crash_timeout == 30


def test_logging_settings_in_the_environment_do_not_concern_the_server(
    tmp_path: Path,
) -> None:
    env = {"LABNOTEBOOK_HOME": str(tmp_path), "LABNOTEBOOK_FLUSH_INTERVAL": "fast"}
    config = ServerConfig.from_env(env)
    assert config.store == f"sqlite:///{tmp_path / 'labnotebook.db'}"


def test_the_dashboard_is_served_with_history_fallback(
    store_url: str, tmp_path: Path
) -> None:
    app = make_app(store_url)
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html>dash</html>")
    (tmp_path / "assets" / "app-1234.js").write_text("console.log(1)")
    app.extensions["labnotebook_static"] = {
        "index.html": tmp_path / "index.html",
        "assets/app-1234.js": tmp_path / "assets" / "app-1234.js",
    }
    client = app.test_client()
    page = client.get("/")
    assert page.data == b"<html>dash</html>"
    assert page.headers["Cache-Control"] == "no-cache"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/runs/abc?x=1").data == b"<html>dash</html>"
    asset = client.get("/assets/app-1234.js")
    assert asset.mimetype in ("text/javascript", "application/javascript")
    assert "immutable" in asset.headers["Cache-Control"]
    assert client.get("/../../etc/passwd").data == b"<html>dash</html>"


def test_a_rebuilt_dashboard_is_served_without_a_restart(tmp_path: Path) -> None:
    build = dashboard._BuildIndex(tmp_path)
    assert build.files() == {}
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app-1.js").write_text("1")
    (tmp_path / "index.html").write_text("<html>1</html>")
    assert set(build.files()) == {"index.html", "assets/app-1.js"}

    (tmp_path / "assets" / "app-1.js").unlink()
    (tmp_path / "assets" / "app-2.js").write_text("2")
    page = tmp_path / "index.html"
    page.write_text("<html>2</html>")
    stat = page.stat()
    os.utime(page, (stat.st_atime, stat.st_mtime + 5))
    assert set(build.files()) == {"index.html", "assets/app-2.js"}


def test_without_a_built_dashboard_the_page_says_how_to_build_it(
    store_url: str,
) -> None:
    app = make_app(store_url)
    app.extensions["labnotebook_static"] = {}
    page = app.test_client().get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/plain"
    assert b"make run" in page.data


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_an_open_host_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--token or the LABNOTEBOOK_TOKEN"):
        serve(f"sqlite:///{tmp_path}/a.db", host="0.0.0.0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_runs_gunicorn_and_logs_each_request_without_the_token(
    tmp_path: Path,
) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "LABNOTEBOOK_TOKEN": TOKEN}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labnotebook.server",
                "--store",
                f"sqlite:///{tmp_path}/s.db",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert requests.get(f"{base}/runs", timeout=5).status_code == 401
        ok = requests.get(
            f"{base}/runs", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = log.read_text()
    assert f"http://127.0.0.1:{port}/" in text
    assert "GET /api/v1/runs 401" in text
    assert "GET /api/v1/runs 200" in text
    assert "gthread" in text or "Booting worker" in text
    assert TOKEN not in text
