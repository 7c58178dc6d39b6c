"""``import labnotebook`` stays light, and a missing framework is named clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )


def test_import_labnotebook_imports_no_framework() -> None:
    done = run_python(
        "import sys, labnotebook, labnotebook.integrations\n"
        "heavy = ('torch', 'lightning', 'keras', 'transformers')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "framework", "package"),
    [
        ("lightning", "lightning", "lightning"),
        ("keras", "keras", "keras"),
        ("transformers", "transformers", "transformers"),
    ],
)
def test_missing_framework_names_the_package(
    module: str, framework: str, package: str
) -> None:
    # A None entry in sys.modules makes every import of that name fail.
    done = run_python(
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"import labnotebook.integrations.{module}"
    )
    assert done.returncode == 1
    assert "ImportError" in done.stderr
    assert f"pip install {package}" in done.stderr
