"""screener: offline batch facial-emotion screening of recorded student videos."""

import os as _os

# onnxruntime's Linux builds queue a telemetry event (device id, OS, CPU, paths) and write
# ~/.cache/Microsoft/DeveloperTools when imported, unless this is set first. Every process that
# may import it (the CLI, spawned and Dask workers, training teachers) imports screener first.
# A user's explicit value is kept.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
