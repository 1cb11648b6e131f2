#!/bin/sh
# Here, before training on a lent GPU machine (scripts/gpu_train.sh): makes .device/, which
# git ignores and the device tool carries: FER2013 as one xz tar (about 44 MiB: ../shared does
# not travel) and the wheels that machine lacks (Keras and two of its dependencies; it has
# JAX, PyTorch, NumPy, OpenCV, ONNX Runtime and Typer). Everything that travels must stay
# under 64 MiB: the checkout's tracked files are about 12 MiB.
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
DATA=${1:-../shared/datasets/fer2013}
mkdir -p .device/wheels
[ -s .device/fer2013.tar.xz ] || tar -C "$DATA" -cf - train val | xz -9e -T2 > .device/fer2013.tar.xz
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .device/wheels keras==3.15.1 namex==0.1.0 optree==0.20.0
du -sh .device .device/*
