"""Emotion models that err differently, read together.

screener's network trained on FER2013 reads FER2013-style faces well and is confidently wrong on
faces unlike them (talking and stern faces read as anger); a network trained on real-world
faces (OpenCV Zoo's, or screener's own distilled from it) reads those better and FER2013's
worse. Each member is calibrated on its own, their log-probabilities are pooled with the
weights the joined model's file gives (a weighted geometric mean), and a temperature
calibrates the pooled answer: one for every face, or one per face from how sure each member is
and how far they disagree (`MemberTemperature`, when every member reads the grey crop). A
member that reads aligned colour faces sits out a face that has none (no landmarks: the Haar
detector).

The joined model is described by a small JSON file naming its members, relative to it:

    {"name": "emotion_joined", "joined": [
        {"model": "emotion_vgg.onnx", "weight": 0.5},
        {"model": "emotion_vgg_xd.onnx", "weight": 0.5}],
     "calibration": {"temperature": 1.0}, ...the model card's fields...}

or `"calibration": {"method": "member_temperature", "bias": ..., "disagreement": ...,
"confidence": [one per member]}`.

A member reads "grey48" (the default) or "aligned112" (`"input": "aligned112"`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from screener.emotions.aligned import AlignedOnnxModel
from screener.emotions.model import ModelCard, ModelError, OnnxEmotionModel
from screener.emotions.temperature import TINY, MemberTemperature, apply_temperature

GREY, ALIGNED = "grey48", "aligned112"
"""What a member reads: the 48x48 grey crop, or the 112x112 colour face aligned on landmarks."""


def is_joined(path: Path) -> bool:
    return path.suffix.lower() == ".json"


class JoinedEmotionModel:
    def __init__(self, path: Path, batch_size: int = 64, threads: int | None = None,
                 flip_margin: float = 0.0, temperature: float | None = None) -> None:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            members = [(m["model"], m.get("input", GREY), float(m.get("weight", 1.0)))
                       for m in meta["joined"]]
            if len(members) < 2 or any(kind not in (GREY, ALIGNED) for _, kind, _ in members):
                raise ValueError
            if all(kind == ALIGNED for _, kind, _ in members):
                raise ValueError
            calibration = dict(meta.get("calibration") or {})
        except FileNotFoundError:
            raise ModelError(f"emotion model not found: {path}") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{path}: not a joined emotion model (a \"joined\" list of two or "
                             f"more members, at least one reading {GREY})") from None
        if any(weight < 0 for _, _, weight in members) or sum(w for *_, w in members) <= 0:
            raise ModelError(f"{path}: member weights must be positive")
        self.members: list[tuple[OnnxEmotionModel | AlignedOnnxModel, str, float]] = [
            (OnnxEmotionModel(path.parent / file, batch_size, threads, flip_margin)
             if kind == GREY else AlignedOnnxModel(path.parent / file, batch_size, threads),
             kind, weight)
            for file, kind, weight in members
        ]
        self.weights = tuple(weight for *_, weight in members)
        self.reads_aligned = any(kind == ALIGNED for _, kind, _ in members)
        self.card = ModelCard.for_model(path, flip_margin)
        self.temperature = self.card.temperature if temperature is None else temperature
        self.member_temperature = None if temperature is not None else \
            member_temperature(path, calibration, [kind for _, kind, _ in members])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        parts = "|".join(model.name for model, _, _ in self.members)
        self.name = (f"{self.card.name}@{digest}[{parts}"
                     f"|w{':'.join(f'{w:g}' for w in self.weights)}]")

    def predict(self, crops: Sequence[np.ndarray] | np.ndarray,
                aligned: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Probabilities over `EMOTIONS` for each face: `crops` are the 48x48 grey crops,
        `aligned` the 112x112 colour ones (None for a face without: the members that read
        them then sit that face out)."""
        count = len(crops)
        if count == 0:
            return np.zeros((0, 7), np.float32)
        has_aligned = np.array([face is not None for face in (aligned or [None] * count)])
        reads = []
        for model, kind, _ in self.members:
            if kind == GREY:
                reads.append(model.predict(crops))
                continue
            read = np.full((count, 7), np.nan, np.float32)
            rows = np.flatnonzero(has_aligned)
            if len(rows):
                read[rows] = model.predict(np.stack([aligned[i] for i in rows]))
            reads.append(read)
        return join(reads, self.weights, self.calibration).astype(np.float32)

    @property
    def calibration(self) -> MemberTemperature | float:
        """What calibrates the pooled answer: the per-face temperature, else the one."""
        return self.member_temperature if self.member_temperature is not None \
            else self.temperature


def pool(members: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The members' probabilities joined as a weighted geometric mean, renormalised; a
    member's NaN row sits that face out."""
    count = len(members[0])
    logs, total = np.zeros((count, 7)), np.zeros((count, 1))
    for read, weight in zip(members, weights, strict=True):
        present = ~np.isnan(read).any(axis=1)
        logs[present] += weight * np.log(np.maximum(read[present], TINY))
        total[present] += weight
    pooled = logs / np.maximum(total, TINY)
    pooled = np.exp(pooled - pooled.max(axis=1, keepdims=True))
    return pooled / pooled.sum(axis=1, keepdims=True)


def join(members: Sequence[np.ndarray], weights: Sequence[float],
         calibration: MemberTemperature | float | np.ndarray = 1.0) -> np.ndarray:
    """The members' reads pooled (`pool`) and calibrated: by a per-face temperature, or by a
    temperature (one, or one per face)."""
    if isinstance(calibration, MemberTemperature):
        return apply_temperature(pool(members, weights), calibration.temperatures(members))
    return apply_temperature(pool(members, weights), calibration)


def member_temperature(path: Path, calibration: dict, kinds: list[str]
                       ) -> MemberTemperature | None:
    """The per-face calibration a joined model's file records, if it records one."""
    if calibration.get("method") != MemberTemperature.METHOD:
        return None
    try:
        fitted = MemberTemperature.from_record(calibration)
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: its member_temperature calibration needs a bias, a "
                         "disagreement and one confidence per member") from None
    if len(fitted.confidence) != len(kinds) or any(kind != GREY for kind in kinds):
        raise ModelError(f"{path}: a member_temperature calibration needs one confidence per "
                         f"member, every member reading {GREY}")
    return fitted


def load_emotion_model(path: Path, batch_size: int = 64, threads: int | None = None,
                       flip_margin: float = 0.0,
                       temperature: float | None = None) -> OnnxEmotionModel | JoinedEmotionModel:
    """The model a `--model` path names: an exported network (.onnx) or a joined model (.json)."""
    if is_joined(path):
        return JoinedEmotionModel(path, batch_size, threads, flip_margin, temperature)
    return OnnxEmotionModel(path, batch_size, threads, flip_margin, temperature=temperature)

