"""The model lab: data (`fer_data`), networks and training (`networks`, `augmentation`,
`training`), evaluation and calibration (`evaluation`, `calibration`), ensembles and int8
export (`ensemble`, `quantization`, `onnx_weights`, `shipping`).

Only `screener train`, `evaluate`, `calibrate`, `ensemble` and `quantize` import it, and most of
it needs the `train` extra (TensorFlow, tf2onnx, onnx); a scan never loads it (tested).
"""
