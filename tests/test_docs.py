"""Documentation stays complete: every public name, command, option, setting and
route is described in docs/, and the public surface is declared in order."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
from pathlib import Path

import click
import pytest

import labnotebook
from labnotebook import Run, Settings
from labnotebook.cli import main as cli_main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in labnotebook.__all__ if n != "__version__"]

    def isort_style(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert names == sorted(names, key=isort_style)
    for name in labnotebook.__all__:
        assert hasattr(labnotebook, name), name
    assert (Path(labnotebook.__file__).parent / "py.typed").exists()


@pytest.mark.parametrize("name", sorted(labnotebook.__all__))
def test_public_name_is_documented(name: str) -> None:
    assert f"`{name}" in doc("python-api.md"), f"{name} is not in docs/python-api.md"


@pytest.mark.parametrize(
    "member",
    sorted(name for name, _ in inspect.getmembers(Run) if not name.startswith("_")),
)
def test_run_member_is_documented(member: str) -> None:
    assert re.search(rf"\b{member}\b", doc("python-api.md")), (
        f"Run.{member} is not in docs/python-api.md"
    )


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings)])
def test_setting_is_documented(field: str) -> None:
    text = doc("configuration.md")
    assert f"`{field}`" in text
    assert f"LABNOTEBOOK_{field.upper()}" in text


def _commands(
    group: click.Command, prefix: str = ""
) -> list[tuple[str, click.Command]]:
    found = [(prefix.strip(), group)]
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            found += _commands(command, f"{prefix} {name}")
    return found


@pytest.mark.parametrize(
    ("path", "command"), _commands(cli_main), ids=lambda v: str(v) if v else "root"
)
def test_cli_command_and_options_are_documented(
    path: str, command: click.Command
) -> None:
    text = doc("cli.md")
    if path:
        assert f"labnotebook {path}" in text, f"`labnotebook {path}` is undocumented"
    for param in command.params:
        if isinstance(param, click.Option):
            longest = max(param.opts, key=len)
            assert longest in text, f"option {longest} of `{path}` is undocumented"


def test_server_settings_and_routes_are_documented(tmp_path: Path) -> None:
    from labnotebook.server import ServerConfig, create_app

    server_doc = doc("server.md")
    for field in dataclasses.fields(ServerConfig):
        assert f"LABNOTEBOOK_{field.name.upper()}" in server_doc, field.name

    api_doc = doc("http-api.md")
    app = create_app({"store": f"sqlite:///{tmp_path / 'docs.db'}"})
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        pattern = "".join(
            "[<{][^>}]+[>}]" if part.startswith("<") else re.escape(part)
            for part in re.split(r"(<[^>]+>)", rule.rule)
        )
        assert re.search(pattern + r"(?![\w/])", api_doc), f"{rule.rule} undocumented"


@pytest.mark.parametrize("module", ["lightning", "keras", "transformers"])
def test_integration_is_documented(module: str) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        found = importlib.import_module(f"labnotebook.integrations.{module}")
    except ImportError as exc:
        pytest.skip(f"the framework of labnotebook.integrations.{module}: {exc}")
    text = doc("integrations.md")
    assert f"labnotebook.integrations.{module} import" in text
    for name in found.__all__:
        assert f"`{name}" in text, f"{module}.{name} is not in docs/integrations.md"
        cls = getattr(found, name)
        options = inspect.signature(cls).parameters
        members = [m for m in vars(cls) if not m.startswith(("_", "on_"))]
        for word in [*options, *members]:
            assert re.search(rf"`[^`]*\b{word}\b", text), (
                f"{module}.{name}: {word} is not in docs/integrations.md"
            )


@pytest.mark.parametrize(
    "page",
    [
        "quickstart.md",
        "python-api.md",
        "filter-language.md",
        "cli.md",
        "schema.md",
        "server.md",
        "security.md",
        "limits.md",
        "configuration.md",
        "deployment.md",
        "integrations.md",
    ],
)
def test_required_pages_exist_and_links_resolve(page: str) -> None:
    text = doc(page)
    for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)", text):
        assert (DOCS / target).exists(), f"{page} links to missing {target}"
