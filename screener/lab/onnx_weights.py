"""Keras weights from a VGG exported to ONNX, float32 or int8, so that a new training cycle can
start from a shipped model whose .keras file is not kept (lab/models/README.md).

The export folds each batch norm into the layer before it, so a layer's own statistics are
gone: they are measured again on training images, and each batch norm is set to those
statistics with a scale and shift that give back the folded layer exactly. Inference then
matches the ONNX file, and training (which normalises by each batch's statistics) starts
near it too, instead of from a network whose batch norms undo the folded scales.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from screener.emotions.model import ModelError, preprocess


def _attribute(node: Any, name: str, default: Any) -> Any:
    import onnx

    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


class _Constants:
    """The graph's constant tensors, int8 ones dequantized, by the name the layers read."""

    def __init__(self, graph: Any):
        from onnx import numpy_helper

        self.values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.dequantized = {
            node.output[0]: node for node in graph.node if node.op_type == "DequantizeLinear"
        }

    def __call__(self, name: str) -> np.ndarray:
        if name in self.values:
            return self.values[name].astype(np.float32)
        node = self.dequantized.get(name)
        if node is None or node.input[0] not in self.values:
            raise KeyError(name)
        quantized = self.values[node.input[0]].astype(np.float32)
        scale = self.values[node.input[1]].astype(np.float32)
        zero = (self.values[node.input[2]].astype(np.float32) if len(node.input) > 2
                else np.zeros_like(scale))
        if scale.ndim == 1:
            shape = [1] * quantized.ndim
            shape[_attribute(node, "axis", 1) % quantized.ndim] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (quantized - zero) * scale


def folded_layers(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(kernel in Keras's layout, scale, shift) of each convolution and dense layer in graph
    order: the layer's output times scale plus shift is what its batch norm gave."""
    import onnx

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types
        raise ModelError(f"cannot read {path} as ONNX [{exc}]") from None
    constant = _Constants(graph)
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_op(output: str, op_type: str) -> Any:
        """The node of `op_type` reading `output`, through quantize/dequantize pairs."""
        for node in consumers.get(output, []):
            if node.op_type == op_type:
                return node
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                found = next_op(node.output[0], op_type)
                if found is not None:
                    return found
        return None

    try:
        for node in graph.node:
            if node.op_type == "Conv":
                kernel = constant(node.input[1]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
                shift = constant(node.input[2])
                layers.append((kernel, np.ones_like(shift), shift))
            elif node.op_type == "MatMul":
                kernel = constant(node.input[1])
                scale = np.ones(kernel.shape[1], np.float32)
                mul = next_op(node.output[0], "Mul")
                if mul is not None:  # the hidden layer's batch norm
                    scale = constant(mul.input[1])
                add = next_op((node if mul is None else mul).output[0], "Add")
                shift = constant(add.input[1]) if add is not None else np.zeros_like(scale)
                layers.append((kernel, scale, shift))
            elif node.op_type == "Gemm":
                kernel = constant(node.input[1])
                if _attribute(node, "transB", 0):
                    kernel = kernel.T
                layers.append((kernel, np.ones(kernel.shape[1], np.float32),
                               constant(node.input[2])))
    except KeyError as exc:
        raise ModelError(f"{path} is not a VGG exported by screener: no {exc}") from None
    kinds = [kernel.ndim for kernel, _, _ in layers]
    if kinds.count(2) != 2 or kinds[-2:] != [2, 2] or 4 not in kinds:
        raise ModelError(
            f"{path} is not a VGG exported by screener: it needs convolutions, then a hidden "
            "dense layer and the classifier"
        )
    return layers


_STATISTICS_CHUNK = 256


def load_into(model: Any, path: Path, images: np.ndarray) -> None:
    """Set `model` (a VGG built by `networks.build_vgg`) to the network stored in `path`;
    `images` (a few thousand training faces, 48x48 grey) measure the batch-norm statistics."""
    import keras

    kinds = keras.layers
    weighted = [layer for layer in model.layers if isinstance(layer, kinds.Conv2D | kinds.Dense)]
    norms = [layer for layer in model.layers if isinstance(layer, kinds.BatchNormalization)]
    layers = folded_layers(path)
    shapes = [tuple(layer.kernel.shape) for layer in weighted]
    if [k.shape for k, _, _ in layers] != shapes or len(norms) != len(weighted) - 1:
        raise ModelError(
            f"{path} does not fit this architecture: its layers are "
            f"{[k.shape for k, _, _ in layers]}, the network's {shapes} "
            "(train with the --blocks and --dense it was trained with)"
        )
    for layer, (kernel, _, shift) in zip(weighted, layers, strict=True):
        layer.kernel.assign(kernel)
        if layer.use_bias:
            layer.bias.assign(shift)
    # Any statistics give back the folded network in inference; measured ones make training
    # mode agree with it too, and they are measured on that network, so set it up first.
    for norm, (_, scale, shift) in zip(norms, layers, strict=False):
        _set_norm(norm, scale, shift, np.zeros_like(shift), np.ones_like(shift))
    before_norms = keras.Model(model.inputs, [layer.output for layer in weighted[:-1]])
    # Summed a chunk at a time: every layer's outputs for a few thousand faces at once took
    # 20 GB and more.
    sums: list[np.ndarray] = []
    squares: list[np.ndarray] = []
    cells: list[int] = []
    for start in range(0, len(images), _STATISTICS_CHUNK):
        outputs = before_norms(preprocess(images[start : start + _STATISTICS_CHUNK]),
                               training=False)
        for i, output in enumerate(outputs):
            channels = np.asarray(output, np.float64).reshape(-1, output.shape[-1])
            if i == len(sums):
                sums.append(np.zeros(channels.shape[1]))
                squares.append(np.zeros(channels.shape[1]))
                cells.append(0)
            sums[i] += channels.sum(axis=0)
            squares[i] += (channels**2).sum(axis=0)
            cells[i] += len(channels)
    for i, (norm, (_, scale, shift)) in enumerate(zip(norms, layers, strict=False)):
        mean = sums[i] / cells[i]
        _set_norm(norm, scale, shift, mean, np.maximum(squares[i] / cells[i] - mean**2, 0.0))


def _set_norm(
    norm: Any, scale: np.ndarray, shift: np.ndarray, mean: np.ndarray, variance: np.ndarray
) -> None:
    """gamma * (u - mean) / sqrt(variance + eps) + beta == scale * u + shift, for every u."""
    root = np.sqrt(variance + norm.epsilon)
    norm.moving_mean.assign(mean.astype(np.float32))
    norm.moving_variance.assign(variance.astype(np.float32))
    norm.gamma.assign((scale * root).astype(np.float32))
    norm.beta.assign((scale * mean + shift).astype(np.float32))
