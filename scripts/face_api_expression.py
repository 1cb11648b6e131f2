"""Measure face-api.js's expression network as a yardstick and a would-be member.

OpenCV Zoo's model is not the only real-world expression model one may lawfully ship:
face-api.js's (MIT; in the npm package `@vladmandic/face-api`, `model/face_expression_model*`)
was "trained on a variety of images from publicly available datasets as well as images scraped
from the web" (its README; which ones is not said, so web photographs like `datasets/wild`'s
may have been among them). Its weights are TensorFlow.js shards of 8-bit values; this rewrites
them as a float ONNX graph that reads the 112x112 aligned colour face as
`screener.emotions.aligned.AlignedOnnxModel` feeds it, and measures it on the domain
benchmark's cached sources, alone and pooled with the shipped model's two members.

    npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
    python scripts/face_api_expression.py package/model \\
        --out benchmarks/results/face_api_expression.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
"""face-api.js's class order, in screener's emotion names."""
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)
JOINS = ((1, 1, 1), (1, 1, 0.5))
"""Weights of member 1, member 2 and this network when pooled."""


def read_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The expression network's tensors, its 8-bit ones restored as q * scale + min."""
    manifest = json.loads((model_dir / "face_expression_model-weights_manifest.json").read_text())
    raw = b"".join((model_dir / p).read_bytes() for group in manifest for p in group["paths"])
    specs = [w for group in manifest for w in group["weights"]]
    size = sum(int(np.prod(w["shape"])) * (1 if w.get("quantization") else 4) for w in specs)
    if size != len(raw):
        raise ValueError(f"{model_dir}: the manifest describes {size} bytes, the shards hold "
                         f"{len(raw)}")
    tensors, offset = {}, 0
    for spec in specs:
        count = int(np.prod(spec["shape"]))
        quantised = spec.get("quantization")
        if quantised:
            values = np.frombuffer(raw, np.uint8, count, offset).astype(np.float32)
            values = values * quantised["scale"] + quantised["min"]
            offset += count
        else:
            values = np.frombuffer(raw, np.float32, count, offset).copy()
            offset += 4 * count
        tensors[spec["name"]] = values.reshape(spec["shape"])
    return tensors


def build_onnx(tensors: dict[str, np.ndarray]) -> object:
    """face-api.js's FaceFeatureExtractor (four densely connected blocks of depthwise-separable
    convolutions, TensorFlow's 'same' padding) and its fully connected layer; input NCHW RGB in
    [-1, 1], output the seven logits."""
    from onnx import TensorProto, helper, numpy_helper

    initialisers, nodes = [], []

    def constant(name: str, value: np.ndarray) -> str:
        initialisers.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attributes: object) -> str:
        output = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def conv(x: str, name: str, weight: np.ndarray, bias: np.ndarray | None, stride: int,
             group: int = 1) -> str:
        inputs = [x, constant(f"{name}/w", weight)]
        if bias is not None:
            inputs.append(constant(f"{name}/b", bias))
        return node("Conv", inputs, strides=[stride, stride], group=group, auto_pad="SAME_UPPER")

    def separable(x: str, name: str, stride: int) -> str:
        depthwise = tensors[f"{name}/depthwise_filter"].transpose(2, 3, 0, 1)
        pointwise = tensors[f"{name}/pointwise_filter"].transpose(3, 2, 0, 1)
        x = conv(x, f"{name}/dw", depthwise, None, stride, group=depthwise.shape[0])
        return conv(x, f"{name}/pw", pointwise, tensors[f"{name}/bias"], 1)

    # (x + 1) * 127.5 - mean, / 255
    x = node("Add", [node("Mul", ["input", constant("half", np.array(0.5))]),
                     constant("shift", (0.5 - MEAN_RGB / 255).reshape(1, 3, 1, 1))])
    for block in range(4):
        name = f"dense{block}"
        if block == 0:
            first = conv(x, f"{name}/conv0", tensors[f"{name}/conv0/filters"].transpose(3, 2, 0, 1),
                         tensors[f"{name}/conv0/bias"], 2)
        else:
            first = separable(x, f"{name}/conv0", 2)
        first = node("Relu", [first])
        second = separable(first, f"{name}/conv1", 1)
        third = separable(node("Relu", [node("Add", [first, second])]), f"{name}/conv2", 1)
        so_far = node("Add", [second, third])
        fourth = separable(node("Relu", [node("Add", [first, so_far])]), f"{name}/conv3", 1)
        x = node("Relu", [node("Add", [first, node("Add", [so_far, fourth])])])
    pooled = node("Flatten", [node("AveragePool", [x], kernel_shape=[7, 7], strides=[2, 2])])
    nodes.append(helper.make_node("Add", [
        node("MatMul", [pooled, constant("fc/w", tensors["fc/weights"])]),
        constant("fc/b", tensors["fc/bias"])], ["logits"]))
    graph = helper.make_graph(
        nodes, "face_api_expression",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])], initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="screener")
    model.ir_version = 8
    return model


def write_model(model_dir: Path, out: Path) -> Path:
    import onnx

    model = build_onnx(read_weights(model_dir))
    onnx.checker.check_model(model)
    onnx.save(model, out)
    out.with_suffix(".json").write_text(json.dumps({"name": out.stem, "labels": LABELS}))
    return out


def measure(onnx_path: Path) -> dict:
    from benchmarks.domain_benchmark import cached_sources, source_scores
    from screener.emotions.aligned import AlignedOnnxModel
    from screener.emotions.joined import load_emotion_model, pool
    from screener.emotions.temperature import apply_temperature
    from screener.lab.calibration import fit_temperature
    from screener.settings import Settings

    settings = Settings()
    shipped = load_emotion_model(settings.model_path, flip_margin=settings.emotions.flip_margin)
    network = AlignedOnnxModel(onnx_path, temperature=1.0)
    reads = {}
    for source in cached_sources(smoke=False):
        have = np.array([face is not None for face in source.aligned])
        own = np.full((len(have), 7), np.nan, np.float32)
        own[have] = network.predict(np.stack([f for f in source.aligned if f is not None]))
        members = [model.predict(source.grey) for model, _, _ in shipped.members]
        reads[source.name] = (members, own, have, source.labels)
    _, own, have, labels = reads["wild_fit"]
    temperature = fit_temperature(own[have], labels[have])

    def row(probabilities: np.ndarray, truth: np.ndarray) -> dict:
        return {"faces": int(len(truth)), **source_scores(probabilities, truth)}

    result: dict = {"temperature_fitted_on_wild_fit": round(temperature, 4), "alone": {},
                    **{f"pooled {w[0]}:{w[1]}:{w[2]:g}": {} for w in JOINS}}
    for name, (members, own, have, labels) in reads.items():
        own[have] = apply_temperature(own[have], temperature)
        result["alone"][name] = row(own[have], labels[have])
        for weights in JOINS:
            pooled = pool([*members, own], weights)
            result[f"pooled {weights[0]}:{weights[1]}:{weights[2]:g}"][name] = row(pooled, labels)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="the npm package's model/ folder")
    parser.add_argument("--out", type=Path, help="write the measurements here (JSON)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = measure(write_model(args.model_dir, Path(folder) / "face_api_expression.onnx"))
    for kind, sources in result.items():
        if isinstance(sources, dict):
            for name, row in sources.items():
                print(f"{kind:18s} {name:16s} {row['accuracy']:.3f} "
                      f"{row['negative_read_negative']:.3f} {row['neutral_read_negative']:.3f} "
                      f"ECE {row['ece']:.3f}")
    if args.out:
        args.out.write_text(json.dumps({"package": "@vladmandic/face-api 1.7.15", **result},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
