"""Mutation testing of screener's decision logic with mutmut: are its tests able to fail?

Each target is a few modules and the tests that should catch a change to them. The check runs
on a copy of the working tree (tracked and untracked, not ignored, files) in a temporary
folder, so the checkout gets no `mutants/` folder and no mutmut settings in pyproject.toml. It
prints the mutation score (killed / (killed + survived)) and every surviving mutant's diff;
docs/testing.md keeps the last results and which survivors are equivalent.

    pip install -e ".[dev]"
    python scripts/mutation_check.py                  # rules and aggregation (~4 min idle)
    python scripts/mutation_check.py --target scan    # skip/store logic (slower: real scans)
    python scripts/mutation_check.py --target estimates   # corrected shares, baseline, trend
    python scripts/mutation_check.py --target all --timeout 3600

Not part of CI: run it when a target's modules or tests change. Runs under `nice -n 10`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TARGETS: dict[str, dict[str, list[str]]] = {
    "decisions": {
        "mutate": ["screener/session/rules.py", "screener/session/aggregate.py"],
        "tests": ["tests/session/test_rules.py", "tests/session/test_aggregate.py"],
        "pytest": [],
    },
    "scan": {
        # The skip-or-analyse and store-or-fail decisions of a scan, and the store's replace.
        "mutate": ["screener/scanning/scan.py", "screener/storage/store.py",
                   "screener/storage/schema.py"],
        "tests": ["tests/storage/test_store.py", "tests/cli/test_cli_promises.py"],
        "pytest": ["-k", "not postgresql and not clients_saving and "
                         "(test_store or rescanning or database_fault)"],
    },
    "estimates": {
        # The corrected share, its interval, and the baseline and trend built on it.
        "mutate": ["screener/session/estimate.py", "screener/session/error_profile.py",
                   "screener/trends/baseline.py", "screener/trends/trend.py"],
        "tests": ["tests/session/test_estimate.py", "tests/session/test_error_profile.py",
                  "tests/trends/test_baseline.py", "tests/trends/test_trend.py"],
        "pytest": ["-k", "not postgresql"],
    },
}


def copy_tree(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def configure(workdir: Path, target: dict[str, list[str]]) -> None:
    config = {
        "source_paths": ["screener/"],
        "only_mutate": target["mutate"],
        "pytest_add_cli_args_test_selection": target["tests"],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", *target["pytest"]],
        "also_copy": ["templates", "models", "sample_videos"],
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    with (workdir / "pyproject.toml").open("a", encoding="utf-8") as pyproject:
        pyproject.write("\n".join(lines) + "\n")


def run_target(name: str, workdir: Path, children: int, timeout_s: float) -> dict:
    mutmut = shutil.which("mutmut")
    if mutmut is None:
        sys.exit("mutmut is not installed: pip install -e '.[dev]'")
    configure(workdir, TARGETS[name])
    started = time.monotonic()
    try:
        subprocess.run(["nice", "-n", "10", mutmut, "run", "--max-children", str(children)],
                       cwd=workdir, stdout=subprocess.DEVNULL, timeout=timeout_s, check=False)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False  # mutmut keeps what it tested; the counts below are partial
    subprocess.run([mutmut, "export-cicd-stats"], cwd=workdir, capture_output=True, check=False)
    stats = json.loads((workdir / "mutants" / "mutmut-cicd-stats.json").read_text())
    results = subprocess.run([mutmut, "results"], cwd=workdir, capture_output=True, text=True,
                             check=False).stdout
    survivors = [line.split(":")[0].strip() for line in results.splitlines()
                 if line.strip().endswith(": survived")]
    diffs = {s: subprocess.run([mutmut, "show", s], cwd=workdir, capture_output=True,
                               text=True, check=False).stdout for s in survivors}
    return {"target": name, "finished": finished, "wall_s": round(time.monotonic() - started),
            "stats": stats, "survivors": diffs}


def report(result: dict) -> None:
    stats = result["stats"]
    decided = stats["killed"] + stats["survived"]
    score = stats["killed"] / decided if decided else float("nan")
    print(f"== {result['target']}: score {score:.1%} ({stats['killed']} killed, "
          f"{stats['survived']} survived, {stats['no_tests']} without tests, "
          f"{stats['timeout']} timed out, of {stats['total']}) in {result['wall_s']} s"
          + ("" if result["finished"] else " -- STOPPED AT THE TIME LIMIT, partial"))
    for diff in result["survivors"].values():
        print(diff.rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="decisions")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per target")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    results = []
    for name in TARGETS if args.target == "all" else [args.target]:
        workdir = Path(tempfile.mkdtemp(prefix=f"screener-mutation-{name}-"))
        try:
            copy_tree(workdir)
            results.append(run_target(name, workdir, args.children, args.timeout))
            report(results[-1])
        finally:
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
