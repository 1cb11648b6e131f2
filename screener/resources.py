"""Where the shipped templates, rule sets and model live.

In a wheel they are copied inside the package (`screener/templates`, `screener/models`); in a
checkout or an editable install they sit at the top of the repository, beside `screener/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """The directory `name` (`templates`, `models`, `rulesets`) as installed or checked out."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"screener is installed without its {name}/ directory")


def is_shipped(path: Path) -> bool:
    """True for a path inside screener's own models folder, which scans read their model from
    (in an editable install, the checkout's models/)."""
    try:
        models = resource_path("models")
    except FileNotFoundError:
        return False
    return path.resolve().is_relative_to(models)
