"""The outbound layer is the bottom of delivery: it imports none of the apps above it."""

from __future__ import annotations

import ast
from pathlib import Path

import osmos.outbound

FORBIDDEN = ("connectors", "ingest", "pipelines", "osmos.tenancy", "osmos.api")
PACKAGE = Path(osmos.outbound.__file__).parent


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def test_the_outbound_package_imports_no_app_above_it():
    offending = [
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module in imported_modules(path)
        if any(module == name or module.startswith(name + ".") for name in FORBIDDEN)
    ]
    assert offending == []


def test_the_check_sees_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import pipelines.models\nfrom connectors import validation\n")

    assert imported_modules(sample) == ["pipelines.models", "connectors"]
