"""Every tunable of the pipeline in one typed object, loadable from TOML.

The CLI builds a `Settings` from defaults, an optional `--config` TOML file and its own options,
in that order of precedence, and hands it down; no stage reads constants of its own.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from screener.resources import resource_path


class SettingsError(ValueError):
    """A configuration file or option the user gave is invalid."""


MIN_EVERY_S = 0.05
"""The shortest key-frame interval, from the command line or a config file alike."""
MAX_SETTINGS_BYTES = 2**20
"""A config or rules file is a page of text: anything larger is not one (`/dev/zero`)."""


@dataclass(frozen=True)
class KeyframeSettings:
    every_s: float = 1.0
    """One representative frame per window of this many seconds inside each scene."""
    cut_threshold: float = 27.0
    """PySceneDetect ContentDetector threshold; higher finds fewer cuts."""
    min_scene_s: float = 0.5
    analysis_width: int = 256
    """Frames are downscaled to about this width for cut detection and sharpness."""
    analysis_fps: float = 10.0
    """Frames per second looked at for cuts and sharpness; the others are decoded only."""
    decoder: str = "pyav"
    """"pyav" (FFmpeg through PyAV) or "opencv" (through PySceneDetect, every frame)."""
    skip_nonref: bool = True
    """PyAV only: do not decode frames that no other frame refers to (about every other
    frame of H.264 with B-frames), a third less decoding; docs/benchmarks.md has the cost."""
    skip_deblocking: bool = False
    """PyAV only: decode without H.264/HEVC's deblocking (loop) filter: a fifth less decoding,
    but blockier faces whose emotions drift (the negative share of the benchmark clip 47% where
    analysing every frame gives 45%; docs/benchmarks.md), so off unless speed matters more."""
    decoder_threads: int = 0
    """0 lets FFmpeg choose; worker processes use 1 so that they do not fight over cores."""

    def __post_init__(self) -> None:
        for name in ("every_s", "min_scene_s", "analysis_width", "analysis_fps"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"keyframes.{name} must be positive")
        if not MIN_EVERY_S <= self.every_s < math.inf:
            raise SettingsError(f"keyframes.every_s must be at least {MIN_EVERY_S:g}")
        if self.decoder not in ("pyav", "opencv"):
            raise SettingsError('keyframes.decoder must be "pyav" or "opencv"')
        if self.decoder_threads < 0:
            raise SettingsError("keyframes.decoder_threads must be 0 or more")


@dataclass(frozen=True)
class FaceSettings:
    detector: str = "yunet"
    """"yunet" (a small CNN with eye landmarks; the default) or "haar" (the original
    project's cascade: fewer faces found, no landmarks)."""
    detector_model: Path | None = None
    """YuNet's ONNX file; None means the one shipped with screener (models/yunet/)."""
    score_threshold: float = 0.4
    """YuNet: the least confidence that counts as a face. 0.4 finds 96% of the session
    benchmark's face segments with no false face (0.7: 87%); false boxes on the real clips
    scored 0.21-0.28 (docs/benchmarks.md)."""
    scale_factor: float = 1.1
    """Haar only: the step between the scales searched."""
    min_neighbors: int = 5
    """Haar only: overlapping hits needed to count as a face."""
    min_size_frac: float = 0.08
    """Smallest face, as a fraction of the shorter frame side, that counts as the student's
    (not applied with `keep_all`, where faces in a crowd are small)."""
    detect_width: int = 640
    """Frames wider than this are downscaled before detection (boxes map back)."""
    all_faces_detect_width: int = 1920
    """The same with `keep_all`: faces of about 20 px in a 1080p crowd stay findable."""
    crop_scale: float = 0.9
    """Side of the square crop, as a multiple of the face box's larger side: relative to the
    face, never pixels, so the crop does not depend on the video's resolution."""
    align_eyes: bool = True
    """Rotate the crop so the eyes (YuNet's landmarks) are level."""
    aligned_crop: bool = False
    """Also cut each face as a 112x112 colour face aligned on its landmarks: set by the
    analysis when the emotion model has a member that reads one, so no other scan pays for it."""
    upright: bool = True
    """Turn a face that lies sideways or upside down (a video without rotation metadata)
    upright before the model reads it (faces/upright.py)."""
    keep_all: bool = False
    """Analyse every face, not just the largest (the student)."""
    full_search_every: int = 10
    """Between full-frame searches, look for the face only around where it last was
    (docs/benchmarks.md). 0 searches the whole frame every time."""

    def __post_init__(self) -> None:
        if self.detector not in ("yunet", "haar"):
            raise SettingsError(f'faces.detector must be "yunet" or "haar", not {self.detector!r}')
        if not 0.0 < self.score_threshold < 1.0:
            raise SettingsError("faces.score_threshold must be between 0 and 1")
        if not 0.2 <= self.crop_scale <= 4.0:
            raise SettingsError("faces.crop_scale must be between 0.2 and 4")
        if self.scale_factor <= 1.0:
            raise SettingsError("faces.scale_factor must be above 1")
        for name in ("detect_width", "all_faces_detect_width"):
            if getattr(self, name) < 64:
                raise SettingsError(f"faces.{name} must be at least 64")
        if not 0.0 <= self.min_size_frac < 1.0 or self.min_neighbors < 0 or (
                self.full_search_every < 0):
            raise SettingsError("faces.min_size_frac must be in [0, 1); min_neighbors and "
                                "full_search_every 0 or more")

    def width_for(self, frame_width: int) -> int:
        """The width a frame is searched at."""
        return min(frame_width, self.all_faces_detect_width if self.keep_all
                   else self.detect_width)

    def smallest_face(self, shape: tuple[int, ...]) -> int:
        """Smallest face side, in pixels of an image of this shape, that counts."""
        return 0 if self.keep_all else int(min(shape[:2]) * self.min_size_frac)


@dataclass(frozen=True)
class EmotionSettings:
    model_path: Path | None = None
    """ONNX model; None means the one shipped with screener."""
    batch_size: int = 64
    """Faces per model call: 64 is as fast as 256 here and keeps ONNX Runtime's memory arena
    about 150 MiB smaller (docs/benchmarks.md)."""
    flip_margin: float = 0.2
    """A face whose two likeliest emotions are closer than this is also run mirrored and the
    two answers averaged (test-time flip averaging of the unsure faces only); 0 never, 1 every
    face. At 0.2 the shipped model mirrors about 28% of FER2013 `val` faces and gets nearly all
    of full flip averaging's accuracy at 1.3x, not 2x, the cost (lab/models/README.md)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SettingsError("emotions.batch_size must be positive")
        if not 0.0 <= self.flip_margin <= 1.0:
            raise SettingsError("emotions.flip_margin must be between 0 and 1")


@dataclass(frozen=True)
class LiveSettings:
    """`screener live`: a camera, stream or file analysed as it plays."""

    window_s: float = 60.0
    """The default rule set's level is that of the last this many seconds, announced when it
    changes."""
    reconnects: int = 3
    """A camera or stream that stops sending is reopened this many times before the session
    ends (and is stored with what was seen)."""
    reconnect_delay_s: float = 1.0
    open_timeout_s: float = 5.0
    """How long a stream URL may take to open, or to send its next frame."""

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise SettingsError("live.window_s must be positive")
        if self.reconnects < 0 or self.reconnect_delay_s < 0 or not self.open_timeout_s > 0:
            raise SettingsError("live.reconnects and reconnect_delay_s must be 0 or more, "
                                "open_timeout_s positive")


@dataclass(frozen=True)
class StorageSettings:
    retention_days: int = 0
    """A school's retention period: sessions recorded longer ago than this many days are erased
    at the end of every `screener scan` (and by `screener forget` with no student), and such
    videos are not stored; 0 keeps them until erased by name."""

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise SettingsError("storage.retention_days must be 0 (keep) or more")


@dataclass(frozen=True)
class Settings:
    keyframes: KeyframeSettings = field(default_factory=KeyframeSettings)
    faces: FaceSettings = field(default_factory=FaceSettings)
    emotions: EmotionSettings = field(default_factory=EmotionSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    rules: str = "default"
    """A shipped rule set name (`default`, `seed`) or the path of a TOML rules file."""
    db_url: str | None = None
    """SQLAlchemy URL; None means $SCREENER_DB or a file in the user's data directory."""
    workers: int = 0
    """Videos analysed in parallel, each in a worker process with one thread per library (or
    on the workers of `cluster = "local"`, at least 2 there). 0 means one per CPU core this
    process may use, at most one per GiB of memory. A lone video is analysed in the scanning
    process itself, with a thread each for decoding, key frames and faces."""
    cluster: str | None = None
    """Dask scheduler address (`tcp://host:8786`) or `local`; None analyses on this machine."""
    force: bool = False
    lock_timeout_s: float = 3600.0
    """How long a scan waits for another scan of the same database to finish."""
    evidence_frames: int = 0
    """Faces kept per session as small thumbnails, in the database and on the student page,
    so a reader can check the model (`--evidence N`). 0, the default, keeps no face image."""

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise SettingsError("workers must be 0 (one per CPU core) or more")
        if not 0 <= self.lock_timeout_s < math.inf:
            raise SettingsError("lock_timeout_s must be 0 or more seconds")
        if not 0 <= self.evidence_frames <= MAX_EVIDENCE_FRAMES:
            raise SettingsError(
                f"evidence_frames must be between 0 (off) and {MAX_EVIDENCE_FRAMES}"
            )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def worker_count(self) -> int:
        return self.workers or default_worker_count()

    @property
    def model_path(self) -> Path:
        return self.emotions.model_path or resource_path("models") / DEFAULT_MODEL_FILE

    @property
    def database_url(self) -> str:
        """A URL; a bare path (`--db reports.db`) means a SQLite file, as a user would expect."""
        value = self.db_url or os.environ.get("SCREENER_DB") or default_database_url()
        if "://" in value:
            return value
        return f"sqlite:///{Path(value).expanduser().resolve()}"

    @property
    def database_is_default(self) -> bool:
        """The database in the user's data folder, which a scan may create; a place the user
        named (`--db`, $SCREENER_DB) must already have its folder."""
        return not (self.db_url or os.environ.get("SCREENER_DB"))


DEFAULT_MODEL_FILE = "emotion_joined.json"
MAX_EVIDENCE_FRAMES = 24
"""A page of thumbnails a person can look through; more would be watching the video."""

WORKER_MEMORY_BUDGET = 2**30
"""Memory allowed per default worker: one peaks at about 250 MiB (docs/benchmarks.md), and a
machine with many cores but little memory must not run out."""


def default_worker_count() -> int:
    """One per core this process may run on (its affinity, e.g. under `taskset` or a
    container's cpuset, can be fewer cores than the machine has), at most one per
    `WORKER_MEMORY_BUDGET` of memory."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return max(1, cores)
    return max(1, min(cores, memory // WORKER_MEMORY_BUDGET))


_SECTIONS = {
    "keyframes": KeyframeSettings, "faces": FaceSettings, "emotions": EmotionSettings,
    "live": LiveSettings, "storage": StorageSettings,
}


def default_database_url() -> str:
    from platformdirs import user_data_path

    return f"sqlite:///{user_data_path('screener') / 'screener.db'}"


def load_settings(path: Path | None) -> Settings:
    """Read a TOML file whose tables mirror the dataclasses; unknown keys are errors."""
    if path is None:
        return Settings()
    data = parse_toml(read_settings_file(path, "config"), str(path))
    top: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: [{key}] must be a table")
            top[key] = _build(_SECTIONS[key], value, f"{path}: [{key}]")
        elif key in _TOP_LEVEL_TYPES:
            top[key] = _checked(key, value, Settings(), f"{path}:")
        else:
            raise SettingsError(f"{path}: unknown setting {key!r}")
    return Settings(**top)


def read_settings_file(path: Path, what: str) -> str:
    """A config or rules file's text, read only from a regular file and only up to
    `MAX_SETTINGS_BYTES`: a FIFO would hang the command, a device never end."""
    try:
        # Non-blocking, so that opening a FIFO with no writer returns at once.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SettingsError(f"cannot read {what} {path}: not a regular file")
            data = handle.read(MAX_SETTINGS_BYTES + 1)
        if len(data) > MAX_SETTINGS_BYTES:
            raise SettingsError(f"cannot read {what} {path}: larger than "
                                f"{MAX_SETTINGS_BYTES // 2**20} MiB")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc}") from exc


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """tomllib recurses once per level of nesting: a hostile file nests deeper than Python's
    stack allows."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: invalid TOML: {exc}") from exc
    except RecursionError:
        raise SettingsError(f"{source}: invalid TOML: nested too deeply") from None


_TOP_LEVEL_TYPES = {"rules", "db_url", "workers", "cluster", "force", "lock_timeout_s",
                    "evidence_frames"}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"{where} unknown setting {key!r}")
        kwargs[key] = _checked(key, value, defaults, where)
    return cls(**kwargs)


def _checked(key: str, value: Any, defaults: Any, where: str) -> Any:
    """The value converted to the type of the field's default, or a SettingsError."""
    default = getattr(defaults, key)
    if key in ("model_path", "detector_model", "db_url", "cluster"):
        if not isinstance(value, str):
            raise SettingsError(f"{where} {key} must be a string")
        return Path(value) if key in ("model_path", "detector_model") else value
    if isinstance(default, tuple):
        if not isinstance(value, list) or len(value) != len(default) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SettingsError(f"{where} {key} must be a list of {len(default)} whole numbers")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{where} {key} must be true or false")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{where} {key} must be a number")
        if isinstance(default, int) and not isinstance(value, int):
            raise SettingsError(f"{where} {key} must be a whole number")
        return value
    if isinstance(default, str) and not isinstance(value, str):
        raise SettingsError(f"{where} {key} must be a string")
    return value
