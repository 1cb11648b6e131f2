"""Carry a training run's best epoch back from a lent GPU machine (lab/models/README.md,
"Training on a GPU machine").

    python3 scripts/gpu_checkpoint.py pack CHECKPOINTS OUT      # there, after `screener train`
    python scripts/gpu_checkpoint.py unpack FILES CHECKPOINTS   # here, before the same command

The machine hands back files of at most 16 MiB. A checkpoint's `best.keras` holds the
optimizer's state too, three times the weights (a full-width VGG: about 110 MB), which only
training needs: `pack` saves the weights and architecture alone and splits them into parts;
`unpack` joins them into a checkpoint folder, with the run's `state.json`, so that the same
`screener train` command run here finds the run finished and exports, measures and calibrates
its best epoch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

PART_BYTES = 15 * 2**20


def pack(checkpoints: Path, out: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    import keras

    best = keras.models.load_model(checkpoints / "best.keras", compile=False)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        bare = Path(scratch) / "best.keras"
        best.save(bare)  # not compiled: no optimizer state
        data = bare.read_bytes()
    parts = []
    for number, start in enumerate(range(0, len(data), part_bytes)):
        part = out / f"best.keras.part{number:02d}"
        part.write_bytes(data[start : start + part_bytes])
        parts.append(part)
    shutil.copy(checkpoints / "state.json", out / "state.json")
    return parts


def unpack(files: Path, checkpoints: Path) -> Path:
    parts = sorted(files.glob("best.keras.part*"))
    if not parts or not (files / "state.json").is_file():
        raise SystemExit(f"{files}: no best.keras.part* and state.json to unpack")
    checkpoints.mkdir(parents=True, exist_ok=True)
    best = checkpoints / "best.keras"
    best.write_bytes(b"".join(part.read_bytes() for part in parts))
    state = json.loads((files / "state.json").read_text())
    if "finished_epochs" not in state:
        # Cut short by the call's limit: its optimizer state stayed there, so it cannot go on
        # here. Marked finished at the epochs it ran; the command must say those epochs.
        state["finished_epochs"] = state["epochs_run"]
        print(f"the run was cut short after {state['epochs_run']} epochs: run the command with "
              f"--epochs {state['epochs_run']} to export its best epoch "
              f"({state['best_epoch']})", file=sys.stderr)
    (checkpoints / "state.json").write_text(json.dumps(state))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.action == "pack":
        for part in pack(args.source, args.target):
            print(f"{part} ({part.stat().st_size / 2**20:.1f} MiB)")
    else:
        print(f"wrote {unpack(args.source, args.target)} and its state.json")


if __name__ == "__main__":
    sys.exit(main())
