"""An int8 ONNX model in QOperator form (QLinearConv, QLinearAdd, QLinearMatMul) rewritten as
the float model its weights describe, with a free batch dimension.

OpenCV Zoo ships its expression model only in int8, with batch 1, and ONNX Runtime's QOperator
kernels ran it at 90-120 faces a second here; the same weights in float run batched. Weights
and biases become exactly (q - zero point) x scale; activations are no longer rounded to 8
bits, so answers differ from the int8 file's on a few faces (measured: lab/models/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def dequantize_model(source: Path, target: Path, batch_name: str = "N") -> None:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    added: dict[str, np.ndarray] = {}
    renamed: dict[str, str] = {}
    nodes = []

    def name_of(value: str) -> str:
        return renamed.get(value, value)

    def real(value: str, scale: str, zero: str) -> np.ndarray:
        q = constants[value].astype(np.float32)
        s, z = constants[scale].astype(np.float32), constants[zero].astype(np.float32)
        if s.size > 1:  # per output channel
            shape = [-1] + [1] * (q.ndim - 1)
            s, z = s.reshape(shape), z.reshape(shape)
        return (q - z) * s

    def constant_or_value(value: str, scale: str, zero: str) -> str:
        if value not in constants:
            return name_of(value)
        added[value + "_float"] = real(value, scale, zero)
        return value + "_float"

    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            renamed[node.output[0]] = name_of(node.input[0])
        elif node.op_type == "QLinearConv":
            x, x_scale, _, w, w_scale, w_zero = node.input[:6]
            inputs = [name_of(x), constant_or_value(w, w_scale, w_zero)]
            if len(node.input) > 8:
                bias = node.input[8]
                added[bias + "_float"] = (constants[bias].astype(np.float32)
                                          * constants[x_scale].astype(np.float32)
                                          * constants[w_scale].astype(np.float32))
                inputs.append(bias + "_float")
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            nodes.append(helper.make_node("Conv", inputs, [node.output[0]], name=node.name,
                                          **attributes))
        elif node.op_type in ("QLinearAdd", "QLinearMatMul"):
            a, a_scale, a_zero, b, b_scale, b_zero = node.input[:6]
            op = "Add" if node.op_type == "QLinearAdd" else "MatMul"
            nodes.append(helper.make_node(
                op, [constant_or_value(a, a_scale, a_zero), constant_or_value(b, b_scale, b_zero)],
                [node.output[0]], name=node.name))
        elif node.op_type.startswith("QLinear"):
            raise ValueError(f"{source}: no float form known for {node.op_type}")
        else:
            copy = helper.make_node(node.op_type, [name_of(i) for i in node.input],
                                    list(node.output), name=node.name)
            copy.attribute.extend(node.attribute)
            nodes.append(copy)
    for output in graph.output:
        if name_of(output.name) != output.name:
            nodes.append(helper.make_node("Identity", [name_of(output.name)], [output.name]))

    used = {i for node in nodes for i in node.input}
    initializers = [numpy_helper.from_array(v, k) for k, v in constants.items() if k in used]
    initializers += [numpy_helper.from_array(v, k) for k, v in added.items()]
    (source_input,) = graph.input[:1]
    dims = [d.dim_value for d in source_input.type.tensor_type.shape.dim]
    inputs = [helper.make_tensor_value_info(source_input.name, onnx.TensorProto.FLOAT,
                                            [batch_name, *dims[1:]])]
    outputs = [helper.make_tensor_value_info(o.name, onnx.TensorProto.FLOAT, [batch_name, None])
               for o in graph.output]
    float_graph = helper.make_graph(nodes, graph.name or "dequantized", inputs, outputs,
                                    initializers)
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    result = helper.make_model(float_graph, opset_imports=opsets)
    result.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(result)
    onnx.save(result, str(target))
