"""Shared fixtures: generated videos, the astronaut face, ../shared when it is present, and a
database URL for each backend (SQLite, and a throwaway PostgreSQL server when one can be
started).

A test that needs something this machine may lack (a PostgreSQL server, `setpriv`, TensorFlow,
Chromium, Xvfb, ../shared) skips without it, unless the run requires that capability:
`SCREENER_REQUIRE` is a comma-separated list of them
(`postgres,setpriv,tensorflow,chromium,xvfb,shared`; `.ci/run` sets it), and
`SCREENER_REQUIRE_POSTGRES=1` is short for `postgres`. A required capability that is missing
fails the test, so CI cannot pass by skipping."""

from __future__ import annotations

import importlib
import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import cv2
import numpy as np
import pytest

from tests.pg_server import PostgresServer, Unavailable

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCREENER_SHARED", REPO.parent / "shared"))
SAMPLE_VIDEOS = REPO / "sample_videos"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CAPABILITIES = ("postgres", "setpriv", "tensorflow", "chromium", "xvfb", "shared")


def required_capabilities() -> set[str]:
    names = {n.strip() for n in os.environ.get("SCREENER_REQUIRE", "").split(",") if n.strip()}
    if os.environ.get("SCREENER_REQUIRE_POSTGRES") == "1":
        names.add("postgres")
    return names


def pytest_configure(config: pytest.Config) -> None:
    unknown = required_capabilities() - set(CAPABILITIES)
    if unknown:  # a typo in CI's list must not quietly require nothing
        raise pytest.UsageError(f"SCREENER_REQUIRE names unknown capabilities: "
                                f"{', '.join(sorted(unknown))} (known: {', '.join(CAPABILITIES)})")


def interruptible() -> None:
    """`preexec_fn` for a child that a test stops with Ctrl-C (SIGINT): a shell that started
    the tests in the background (`cmd &` without job control) passes SIGINT on as ignored, and
    Python then never turns it into KeyboardInterrupt, so the child would not notice it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def missing(capability: str, reason: str) -> NoReturn:
    """Skip the test for want of `capability`, or fail it when the run requires it."""
    assert capability in CAPABILITIES, capability
    if capability in required_capabilities():
        pytest.fail(f"SCREENER_REQUIRE includes {capability}, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_missing(module: str, capability: str) -> ModuleType:
    """`pytest.importorskip` that fails instead when the run requires `capability`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(capability, f"{module} cannot be imported: {exc}")


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    folder = SHARED / "videos"
    if not (folder / "WolfgangLanger_Pexels.mp4").is_file():
        missing("shared", f"{folder} is absent (a fresh clone): real-video tests skipped")
    return folder


_postgres_missing: list[str] = []
POSTGRES_SKIP = "PostgreSQL unavailable: "


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except Unavailable as exc:
        _postgres_missing.append(str(exc))
    if _postgres_missing:
        missing("postgres", f"{POSTGRES_SKIP}{_postgres_missing[0]}")
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say once, even without -rs, why the PostgreSQL cases were skipped. Read from the skip
    reports, which reach this process from every pytest-xdist worker."""
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(POSTGRES_SKIP):
            detail = reason.removeprefix(POSTGRES_SKIP)
            terminalreporter.write_line(f"PostgreSQL tests did not run: {detail}")
            return


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend, as a `--db` URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/screener.db"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain photo of a smiling astronaut, as BGR."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(path, frames, fps)

    return make


def face_frames(astronaut: np.ndarray, count: int, size: tuple[int, int] = (320, 240),
                seed: int = 0) -> list[np.ndarray]:
    """The astronaut's face, gently moving, as video frames."""
    rng = np.random.default_rng(seed)
    face = astronaut[20:300, 110:390]
    frames = []
    for i in range(count):
        dx, dy = int(6 * np.sin(i / 5)), int(4 * np.cos(i / 7))
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        crop = cv2.resize(face, (size[1] - 20, size[1] - 20))
        x0, y0 = (size[0] - crop.shape[1]) // 2 + dx, 10 + dy
        canvas[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        noise = rng.integers(0, 6, canvas.shape, dtype=np.uint8)
        frames.append(cv2.add(canvas, noise))
    return frames


def plain_frames(count: int, colour: tuple[int, int, int], size: tuple[int, int] = (320, 240),
                 seed: int = 1) -> list[np.ndarray]:
    """A textured, faceless scene of one colour."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), np.uint8)
    base[:] = colour
    texture = rng.integers(0, 40, base.shape, dtype=np.uint8)
    return [cv2.add(base, np.roll(texture, i, axis=1)) for i in range(count)]


def _mean_brightness_model(path: Path, name: str, weights: np.ndarray, bias: np.ndarray,
                           left_half: bool = False) -> Path:
    """A real ONNX model: softmax(mean brightness of the face, or of its left half, times
    `weights` plus `bias`), so its answers are known from the picture alone."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["faces", "start", "end", "width_axis"], ["seen"]),
            helper.make_node("ReduceMean", ["seen"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "axis"], ["column"]),
            helper.make_node("MatMul", ["column", "w"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        name,
        [helper.make_tensor_value_info("faces", TensorProto.FLOAT, [None, 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 7])],
        [
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
            helper.make_tensor("start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("end", TensorProto.INT64, [1], [24 if left_half else 48]),
            helper.make_tensor("width_axis", TensorProto.INT64, [1], [2]),
            helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.flatten()),
            helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    # It answers from brightness, so a dark face must reach it as dark as it is.
    path.with_suffix(".json").write_text(json.dumps({"equalise_dark": False}))
    return path


def conv_model(path: Path, seed: int = 0, filters: int = 16) -> Path:
    """A real convolutional emotion model with random weights: int8 quantization acts on
    convolutions and matrix products, which the brightness models have too few of."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    kernels = rng.normal(0, 0.3, (filters, 1, 5, 5)).astype(np.float32)
    dense = rng.normal(0, 3.0, (filters, 7)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["faces"], ["nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("Conv", ["nchw", "k", "kb"], ["conv"], strides=[2, 2]),
            helper.make_node("Relu", ["conv"], ["relu"]),
            helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["features"]),
            helper.make_node("MatMul", ["features", "w"], ["scaled"]),
            helper.make_node("Add", ["scaled", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "conv",
        [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["batch", 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(kernels, "k"),
         numpy_helper.from_array(rng.normal(0, 0.1, filters).astype(np.float32), "kb"),
         numpy_helper.from_array(dense, "w"),
         numpy_helper.from_array(rng.normal(0, 0.5, 7).astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def banded_model(path: Path, dark: str, mid: str, bright: str, centre: float = 0.17,
                 band: float = 0.25) -> Path:
    """A real ONNX model whose answers are known from a face's mean brightness m (in the
    model's [-1, 1] input scale): `dark` below about centre - band, `bright` above about
    centre + band, `mid` between, each by a wide margin at m = centre +- 2 * band."""
    from screener.domain import EMOTIONS

    slope = 20.0
    weights = np.zeros((1, len(EMOTIONS)), np.float32)
    bias = np.full(len(EMOTIONS), -100.0, np.float32)
    weights[0, EMOTIONS.index(dark)], bias[EMOTIONS.index(dark)] = -slope, slope * centre
    weights[0, EMOTIONS.index(bright)], bias[EMOTIONS.index(bright)] = slope, -slope * centre
    bias[EMOTIONS.index(mid)] = slope * band
    return _mean_brightness_model(path, "banded", weights, bias)


def brightness_model(path: Path, left_half: bool = False) -> Path:
    """A real ONNX model whose answers are known: bright faces are happy, dark ones sad.
    With `left_half` only the left half of a face counts, so its mirror image differs."""
    from screener.domain import EMOTIONS

    weights = np.full((1, len(EMOTIONS)), 0.0, np.float32)
    bias = np.full(len(EMOTIONS), -100.0, np.float32)
    weights[0, EMOTIONS.index("happy")], bias[EMOTIONS.index("happy")] = 10.0, 0.0
    weights[0, EMOTIONS.index("sad")], bias[EMOTIONS.index("sad")] = -10.0, 0.0
    return _mean_brightness_model(path, "brightness", weights, bias, left_half)
