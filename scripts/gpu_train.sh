#!/bin/sh
# Trains an emotion model on a lent GPU machine, which has JAX and PyTorch but no TensorFlow
# (lab/models/README.md, "Training on a GPU machine"). Run from the repository root there, after
# `sh scripts/prepare_gpu_run.sh` here, through the device tool with `carry: [".device"]`:
#
#   EPOCHS=100 sh scripts/gpu_train.sh --arch vgg --blocks 64,128,256,512 --dense 1024 ...
#
# The flags are `screener train`'s, without --data, --out, --checkpoints, --epochs and
# --patience, which are set here. Two epochs are timed first (the first compiles), and the run
# gets EPOCHS (default 60) or as many as fit TRAIN_SECONDS (default 420), so that its cosine
# schedule ends inside the call's limit. What comes back under $OUT: train.log, the best epoch
# in parts of at most 15 MiB, state.json, and command.txt, the command that exports it here
# after `python scripts/gpu_checkpoint.py unpack FILES runs/gpu/checkpoints`.
set -u
OUT=${OUT:?run this through the device tool, which sets OUT}
BUDGET=${TRAIN_SECONDS:-420}
if ls .device/wheels/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .device/wheels/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
python3 -c "import tarfile; tarfile.open('.device/fer2013.tar.xz').extractall('/tmp/fer')" || exit 1
nvidia-smi -L > "$OUT/train.log" 2>&1

# The probe also picks the backend: JAX first, PyTorch if JAX cannot train here (one call is
# most of a session's device time, so it must not end on a backend that fails to start).
for KERAS_BACKEND in ${KERAS_BACKEND:-jax} torch; do
    export KERAS_BACKEND
    rm -rf /tmp/probe
    echo "probe with KERAS_BACKEND=$KERAS_BACKEND" >> "$OUT/train.log"
    python3 -m screener train --data /tmp/fer --out /tmp/probe/m.keras \
        --checkpoints /tmp/probe/checkpoints "$@" --epochs 2 >> "$OUT/train.log" 2>&1 && break
done
[ -s /tmp/probe/checkpoints/state.json ] || { tail -20 "$OUT/train.log"; exit 1; }
EPOCHS=$(python3 -c "
import json
state = json.load(open('/tmp/probe/checkpoints/state.json'))
first = state['wall_s'] - state['last_epoch_s']
print(max(1, min(${EPOCHS:-60}, int(($BUDGET - first) // state['last_epoch_s']))))
") || exit 1
echo "probe: $(cat /tmp/probe/checkpoints/state.json); training $EPOCHS epochs" >> "$OUT/train.log"

FLAGS="$* --epochs $EPOCHS --patience $EPOCHS"
echo "KERAS_BACKEND=$KERAS_BACKEND screener train --data ../shared/datasets/fer2013 $FLAGS" \
    "--out runs/gpu/emotion_model.keras --checkpoints runs/gpu/checkpoints" > "$OUT/command.txt"
# shellcheck disable=SC2086
timeout $((BUDGET + 120)) python3 -m screener train --data /tmp/fer \
    --out /tmp/run/emotion_model.keras --checkpoints /tmp/run/checkpoints $FLAGS \
    >> "$OUT/train.log" 2>&1
python3 scripts/gpu_checkpoint.py pack /tmp/run/checkpoints "$OUT" >> "$OUT/train.log" 2>&1
tail -5 "$OUT/train.log"
