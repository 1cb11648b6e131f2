"""The package reads in the order data flows: each stage imports only the stages before it,
no module imports itself round a circle, and a scan loads nothing of the model lab."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "screener"

STAGES = (
    ("errors", "domain", "privacy", "resources", "settings", "terminal"),
    ("video",),
    ("faces",),
    ("emotions",),
    ("session",),
    ("storage",),
    ("trends",),
    ("reports",),
    ("scanning",),
    ("live",),
    ("lab",),
    ("cli", "__main__", "__init__"),
)
"""Stages in data order; a module may import its own stage and any stage above it here."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int:
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else "__init__"
    return next(i for i, names in enumerate(STAGES) if part in names)


def imports_of(path: Path) -> set[str]:
    """Every screener module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("screener")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("screener"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file()
                found.add(candidate if is_module else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_stage():
    for module in import_graph():
        assert stage_of(module) >= 0, module


def test_no_stage_imports_a_later_stage():
    backwards = [
        f"{module} imports {imported}"
        for module, imported_set in import_graph().items()
        for imported in imported_set
        if imported != "screener" and stage_of(imported) > stage_of(module)
    ]
    assert backwards == []


def test_no_module_imports_itself_round_a_circle():
    graph = import_graph()
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if imported not in graph:
                continue
            if state.get(imported) == "open":
                circles.append(trail[trail.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, trail + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_top_level_holds_only_the_shared_records():
    modules = [p.name for p in PACKAGE.glob("*.py")]
    assert len(modules) <= 12, modules


def test_a_scan_loads_no_model_lab_module_and_no_tensorflow(tmp_path, astronaut):
    from tests.conftest import face_frames, write_video

    videos = tmp_path / "videos" / "alex"
    videos.mkdir(parents=True)
    write_video(videos / "2026-01-05.mp4", face_frames(astronaut, 30))
    code = (
        "import sys\n"
        "from screener.cli import main\n"
        f"sys.argv = ['screener', 'scan', {str(tmp_path / 'videos')!r},\n"
        f"            '--out', {str(tmp_path / 'out')!r}, '--db', 'sqlite:///{tmp_path}/s.db',\n"
        "            '--workers', '1', '--quiet']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "loaded = [m for m in sys.modules if m.startswith('screener.lab') or m == 'tensorflow']\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert list((tmp_path / "out").glob("alex-*.html")), "the scan wrote no student page"
    assert "LOADED []" in out.stdout, out.stdout[-2000:]
