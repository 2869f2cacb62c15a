"""The package layout: module names that never collide, and the README's map matching the tree.

The layers themselves (which package may import which) are import-linter's contracts in
pyproject.toml, checked by `make test` before pytest runs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("moderation", "workers")


def modules() -> list[Path]:
    """Every module of the two packages, package markers aside."""
    found = []
    for package in PACKAGES:
        found += [p for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py"]
    return sorted(found)


def readme_map() -> str:
    """The README's "How it works" section: the diagram and the module map."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## How it works")
    return readme[start : readme.index("\n## ", start + 1)]


def test_no_two_modules_share_a_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in modules():
        by_name[path.name].append(str(path.relative_to(ROOT)))
    alike = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not alike, f"modules with the same name: {alike}"


def test_the_readme_map_names_every_module() -> None:
    section = readme_map()
    missing = [str(path.relative_to(ROOT)) for path in modules() if f"{path.name}`" not in section]
    assert not missing, f"modules the README's map does not name: {missing}"


def test_every_module_the_readme_map_names_exists() -> None:
    names = {path.name for path in modules()} | {"app.py", "client.py"}
    named = set(re.findall(r"([a-z0-9_]+\.py)`", readme_map()))
    assert named, "the README's map names no module"
    assert not named - names, f"the README's map names modules that do not exist: {named - names}"


def test_the_layers_import_linter_checks_are_the_packages_there_are() -> None:
    """A renamed or new package must be placed in a layer, or the contract checks nothing."""
    text = (ROOT / "pyproject.toml").read_text()
    layers = text[text.index('type = "layers"') :].split("]", 1)[0]
    placed = set(re.findall(r"moderation\.\w+|workers", layers))
    packages = {
        f"moderation.{p.name}"
        for p in (ROOT / "moderation").iterdir()
        if (p / "__init__.py").exists()
    }
    packages |= {"moderation.app", "workers"}
    assert packages == placed
