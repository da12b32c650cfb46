"""What pip installs: every pin in constraints.txt, and extras that exist."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_extra_asked_of_a_dependency_exists():
    # pip only warns about an unknown extra ("does not provide the extra"), on every install.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)\[([^\]]+)\]", requirement)
        if match is None:
            continue
        name, extras = match.group(1), match.group(2).split(",")
        provided = metadata.metadata(name).get_all("Provides-Extra") or []
        for extra in extras:
            assert extra.strip() in provided, f"{name} has no extra {extra!r}: {provided}"


def test_every_direct_dependency_is_pinned():
    pins = {line.split("==")[0].lower().replace("_", "-")
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
