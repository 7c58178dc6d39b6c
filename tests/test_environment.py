"""Code and environment captured at start: git state, diff, Python, packages, host."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from labnotebook import Notebook, Settings
from labnotebook._environment import MAX_ENVIRONMENT_BYTES, capture, strip_credentials
from labnotebook._store.base import Batch, RunCreate
from labnotebook.server import ServerConfig, create_app

TOKEN_REMOTE = "https://alice:ghp_s3cret@github.com/lab/model.git"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Lab", "-c", "user.email=lab@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed git repository holding train.py, run as the current script."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("lr = 0.1\nprint(lr)\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", TOKEN_REMOTE)
    monkeypatch.setattr(sys, "argv", [str(root / "train.py"), "--lr", "0.1"])
    return root


def _environment(notebook: Notebook) -> dict[str, object]:
    with notebook.start("r") as run:
        started = run.environment
    stored = notebook.get_run(run.id).environment
    assert stored == started
    assert list(stored.get("packages", {})) == sorted(stored.get("packages", {}))
    return stored


def test_a_clean_repository(notebook: Notebook, repo: Path) -> None:
    env = _environment(notebook)

    code = env["code"]
    assert isinstance(code, dict)
    assert code["commit"] == git(repo, "rev-parse", "HEAD")
    assert code["branch"] == "main"
    assert code["remote"] == "https://github.com/lab/model.git"
    assert "s3cret" not in json.dumps(env)
    assert code["dirty"] is False
    assert code["diff"] == ""
    assert code["diff_truncated"] is False
    assert code["untracked"] == []
    assert code["script"] == str(repo / "train.py")
    assert code["argv"] == [str(repo / "train.py"), "--lr", "0.1"]
    assert code["notebook"] is None


def test_a_dirty_repository_records_the_diff_and_untracked_files(
    notebook: Notebook, repo: Path
) -> None:
    (repo / "train.py").write_text("lr = 0.01\nprint(lr)\n<script>alert(1)</script>\n")
    (repo / "notes.txt").write_text("untracked\n")

    code = _environment(notebook)["code"]

    assert isinstance(code, dict)
    assert code["dirty"] is True
    assert code["untracked"] == ["notes.txt"]
    assert code["diff_truncated"] is False
    diff = code["diff"]
    assert diff.startswith("diff --git a/train.py b/train.py\n")
    assert "-lr = 0.1\n" in diff
    assert "+lr = 0.01\n" in diff
    assert "+<script>alert(1)</script>\n" in diff


def test_only_untracked_files_make_a_repository_dirty(
    notebook: Notebook, repo: Path
) -> None:
    (repo / "scratch.py").write_text("x = 1\n")
    code = _environment(notebook)["code"]
    assert isinstance(code, dict)
    assert code["dirty"] is True
    assert code["diff"] == ""
    assert code["untracked"] == ["scratch.py"]


def test_a_diff_over_the_cap_is_cut_at_a_whole_line(
    settings: Settings, repo: Path
) -> None:
    (repo / "train.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    notebook = Notebook(settings.replace(max_diff_size=2000))
    try:
        code = _environment(notebook)["code"]
    finally:
        notebook.close()

    assert isinstance(code, dict)
    assert code["diff_truncated"] is True
    assert 1000 < len(code["diff"].encode()) <= 2000
    assert code["diff"].endswith("\n")
    assert code["diff"].startswith("diff --git a/train.py b/train.py\n")


def test_each_part_can_be_switched_off(settings: Settings, repo: Path) -> None:
    cases = [
        ({"capture_code": False}, {"python", "platform", "packages", "host"}),
        ({"capture_environment": False}, {"code"}),
    ]
    for changes, keys in cases:
        notebook = Notebook(settings.replace(**changes))
        try:
            assert set(_environment(notebook)) == keys
        finally:
            notebook.close()

    notebook = Notebook(settings.replace(capture_code=False, capture_environment=False))
    try:
        with notebook.start() as run:
            pass
        assert notebook.get_run(run.id).record.environment is None
        assert notebook.get_run(run.id).environment == {}
    finally:
        notebook.close()


def test_python_platform_packages_and_host(notebook: Notebook) -> None:
    env = _environment(notebook)

    python = env["python"]
    assert isinstance(python, dict)
    assert python["version"] == ".".join(map(str, sys.version_info[:3]))
    assert python["implementation"] == "CPython"
    assert python["executable"] == sys.executable
    assert isinstance(env["platform"], dict)
    assert env["platform"]["system"]

    packages = env["packages"]
    assert isinstance(packages, dict)
    assert list(packages) == sorted(packages)
    assert packages["pytest"] == pytest.__version__
    assert "sqlalchemy" in packages

    host = env["host"]
    assert isinstance(host, dict)
    assert host["hostname"]
    assert host["cpu_count"] >= 1
    assert host["ram"] > 0
    assert "error" not in host


def test_no_gpu_library_or_driver_is_no_gpus_entry_and_no_warning() -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        has_nvml = False
    else:
        has_nvml = True
        pynvml.nvmlShutdown()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host = capture(code=False, environment=True, max_diff_size=0)["host"]
    if has_nvml:
        assert all(gpu["name"] and gpu["driver"] for gpu in host.get("gpus", []))
    else:
        assert "gpus" not in host
        assert "error" not in host


def test_outside_a_repository_there_is_no_git_state(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "alone" / "train.py"
    script.parent.mkdir()
    script.write_text("pass\n")
    monkeypatch.setattr(sys, "argv", [str(script)])
    code = _environment(notebook)["code"]
    assert code == {"script": str(script), "argv": [str(script)], "notebook": None}


def test_a_git_failure_is_recorded_and_the_run_still_starts(
    notebook: Notebook, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-such-bin"))
    code = _environment(notebook)["code"]
    assert isinstance(code, dict)
    assert code["error"] == "git: git is not installed"
    assert code["script"] == str(repo / "train.py")


def test_a_git_that_hangs_is_given_up_after_the_timeout(
    notebook: Notebook, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    (slow / "git").write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    (slow / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(slow))

    started = time.monotonic()
    code = _environment(notebook)["code"]

    assert time.monotonic() - started < 15
    assert isinstance(code, dict)
    assert code["error"] == "git: git status took longer than 2.0 s; not recorded"
    assert "commit" not in code


def test_arguments_that_are_not_valid_text_are_escaped(
    notebook: Notebook, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py"), "bad-\udcff"])
    code = _environment(notebook)["code"]
    assert isinstance(code, dict)
    assert code["argv"][1:] == ["bad-\\udcff"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (TOKEN_REMOTE, "https://github.com/lab/model.git"),
        ("https://oauth2:tok@gitlab.com/a/b.git", "https://gitlab.com/a/b.git"),
        ("http://tok@host:8080/a.git?token=x", "http://host:8080/a.git"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://host/a.git?access_token=t#frag", "https://host/a.git"),
        ("HTTPS://u:p@Host/a.git", "https://Host/a.git"),
        ("ssh://git:pw@host/a.git", "ssh://git@host/a.git"),
        ("ssh://git@host/a.git", "ssh://git@host/a.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("/srv/git/a.git", "/srv/git/a.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_the_largest_capture_fits_the_server_limit(store_url: str, repo: Path) -> None:
    # Line noise that JSON escapes to several bytes per byte of diff.
    (repo / "train.py").write_text('"\\\t\x01' * 600_000)
    env = capture(code=True, environment=True, max_diff_size=10_000_000)
    assert env["code"]["diff_truncated"] is True
    size = len(json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= MAX_ENVIRONMENT_BYTES

    app = create_app(ServerConfig(store=store_url))
    try:
        client = app.test_client()
        batch = Batch(
            run_id="e" * 32,
            create=RunCreate(
                experiment="remote",
                name="r",
                params={},
                tags=[],
                started_at=time.time(),
                environment=env,
            ),
        )
        response = client.post(
            "/api/v1/ingest", data=batch.to_json(), content_type="application/json"
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        run = client.get(f"/api/v1/runs/{'e' * 32}").get_json()
        assert run["environment"] == env
    finally:
        app.extensions["labnotebook"].store.close()


def test_a_run_logged_through_a_tracking_server_keeps_its_capture(
    store_url: str, repo: Path, tmp_path: Path
) -> None:
    from browser.helpers import running_server

    (repo / "train.py").write_text("lr = 0.5\n")
    with running_server(store_url, tmp_path / "server.log") as base:
        remote = Notebook(Settings(url=base, home=str(tmp_path / "client")))
        try:
            env = _environment(remote)
        finally:
            remote.close()

    code = env["code"]
    assert isinstance(code, dict)
    assert code["remote"] == "https://github.com/lab/model.git"
    assert "+lr = 0.5\n" in code["diff"]
    direct = Notebook(Settings(url=store_url, home=str(tmp_path / "direct")))
    try:
        with direct.start() as run:
            pass
        assert direct.get_run(run.id).environment["packages"] == env["packages"]
    finally:
        direct.close()


def test_the_server_refuses_an_environment_over_the_limit(store_url: str) -> None:
    app = create_app(ServerConfig(store=store_url))
    try:
        client = app.test_client()
        batch = Batch(
            run_id="d" * 32,
            create=RunCreate(
                experiment="remote",
                name="r",
                params={},
                tags=[],
                started_at=time.time(),
                environment={"code": {"diff": "x" * MAX_ENVIRONMENT_BYTES}},
            ),
        )
        response = client.post(
            "/api/v1/ingest", data=batch.to_json(), content_type="application/json"
        )
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["code"] == "invalid_value"
        assert "create.environment" in error["message"]
        assert str(MAX_ENVIRONMENT_BYTES) in error["message"]
        assert client.get(f"/api/v1/runs/{'d' * 32}").status_code == 404
    finally:
        app.extensions["labnotebook"].store.close()


def test_capture_at_start_stays_fast(notebook: Notebook, repo: Path) -> None:
    (repo / "train.py").write_text("changed\n")
    with notebook.start():
        pass
    started = time.perf_counter()
    capture(code=True, environment=True, max_diff_size=1_000_000)
    # Generous for a loaded 2-core machine; typically about 10 ms.
    assert time.perf_counter() - started < 1.5


def test_a_notebook_records_its_path_and_kernel(
    settings: Settings, repo: Path, tmp_path: Path
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "environment-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "test", "language": "python"})
    )
    manager = KernelManager(
        kernel_name="environment-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
        connection_file=str(tmp_path / "kernel-1.json"),
    )
    notebook_path = repo / "analysis.ipynb"
    manager.start_kernel(env={"JPY_SESSION_NAME": str(notebook_path)}, cwd=str(repo))
    client = manager.client()
    client.start_channels()
    out = tmp_path / "run-id"
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            "from labnotebook import Notebook, Settings\n"
            f"nb = Notebook(Settings(url={settings.url!r}, home={settings.home!r}))\n"
            "with nb.start('in-a-notebook', system_metrics=False) as run:\n"
            "    pass\n"
            f"open({str(out)!r}, 'w').write(run.id)\n"
            "nb.close()\n",
            timeout=60,
            output_hook=lambda msg: None,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    reader = Notebook(settings)
    try:
        code = reader.get_run(out.read_text()).environment["code"]
    finally:
        reader.close()
    assert code["notebook"] == {
        "path": str(notebook_path),
        "kernel": "kernel-1.json",
        "shell": "ZMQInteractiveShell",
    }
    assert code["script"] is None
    assert code["commit"] == git(repo, "rev-parse", "HEAD")


@pytest.mark.parametrize("count", [300, 1_500])
def test_a_command_line_cut_to_fit_says_how_long_it_was(
    repo: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    # 300 arguments of 10,000 characters are 3 MB: argv was cut to its first 10
    # with nothing to tell that the rest existed.
    argv = [str(repo / "train.py")] + [f"{i:05d}" + "a" * 10_000 for i in range(count)]
    monkeypatch.setattr(sys, "argv", argv)
    code = capture(code=True, environment=False, max_diff_size=1_000_000)["code"]
    assert code["argv_truncated"] == count + 1
    assert code["argv"][0] == str(repo / "train.py")
    assert [a[:5] for a in code["argv"][1:]] == [f"{i:05d}" for i in range(9)]
    assert len(json.dumps(code)) <= MAX_ENVIRONMENT_BYTES

    monkeypatch.setattr(sys, "argv", ["train.py", *map(str, range(1_200))])
    code = capture(code=True, environment=False, max_diff_size=1_000_000)["code"]
    assert len(code["argv"]) == 1_000
    assert code["argv_truncated"] == 1_201
    monkeypatch.setattr(sys, "argv", ["train.py", "--lr", "0.1"])
    code = capture(code=True, environment=False, max_diff_size=1_000_000)["code"]
    assert "argv_truncated" not in code


def test_a_deleted_current_folder_keeps_the_command_line(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # python -c run from a folder deleted meanwhile: the whole code section was
    # one FileNotFoundError, the command line lost with it.
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setattr(sys, "argv", ["-c", "--lr", "0.1"])
    code = _environment(notebook)["code"]
    assert code == {
        "script": None,
        "argv": ["-c", "--lr", "0.1"],
        "notebook": None,
        "error": "git: the current folder cannot be read (No such file or directory); "
        "not recorded",
    }
