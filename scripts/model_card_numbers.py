"""Print the model card's numbers (accuracy, per-class table) from a model's metrics JSON,
so that lab/models/README.md is filled from measurements rather than typed by hand.

    python scripts/model_card_numbers.py models/emotion_vgg.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: Path) -> None:
    meta = json.loads(path.read_text())
    evaluation = meta["evaluation"]
    correct = sum(row[i] for i, row in enumerate(evaluation["confusion"]))
    head = f"val accuracy {meta['val_accuracy']:.1%} ({correct:,} of {evaluation['count']:,}); "
    if "members" in meta:  # an ensemble (screener ensemble): its members were trained apart
        members = ", ".join(f"{m['name']} {m['val_accuracy_one_pass']:.1%}"
                            for m in meta["members"])
        print(head + f"{meta['parameters']:,} parameters; members (one pass): {members}")
    else:
        wall = meta["train_wall_s"]
        print(head + f"best epoch {meta['best_epoch']} of {meta['epochs_run']} run; "
              f"{meta['parameters']:,} parameters; "
              + (f"training wall time {wall / 60:.0f} min" if wall else "run still in progress"))
    print("\n| class | precision | recall | F1 | images |\n|---|---|---|---|---|")
    for name, m in evaluation["per_class"].items():
        print(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
              f"| {m['support']} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "models/emotion_vgg.json"))
