#!/bin/sh
# Everything the model card needs to decide whether a candidate emotion model ships, measured
# against the shipped one: `val` and pipeline stills side by side, the session benchmark (10 and
# 1 minutes, held-out clean error profile) and the budget (model benchmark). Results go to
# benchmarks/results/*_TAG.json; the console lines go to the model card by hand.
#
#     sh scripts/measure_model.sh CANDIDATE.onnx TAG [--quick]
#
# --quick stops after the stills (a few minutes): enough to drop a candidate. Pause a
# background training first (kill -STOP), or the speed figures measure a shared CPU.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: sh scripts/measure_model.sh CANDIDATE.onnx TAG [--quick]" >&2; exit 2; }
MODEL=$(realpath "$1")
TAG=$2
[ -f "$MODEL" ] || { echo "error: no model at $1" >&2; exit 2; }
DATA=${DATA:-../shared/datasets/fer2013}

python benchmarks/pipeline_accuracy.py --data "$DATA" models/emotion_vgg.onnx "$MODEL"
[ "${3:-}" = "--quick" ] && exit 0

CONFIG=$(mktemp --suffix=.toml)
trap 'rm -f "$CONFIG"' EXIT
printf '[emotions]\nmodel_path = "%s"\n' "$MODEL" > "$CONFIG"
python benchmarks/session_benchmark.py --config "$CONFIG" --minutes 10 --profile clean \
    --tag "10min_clean_$TAG"
python benchmarks/session_benchmark.py --config "$CONFIG" --minutes 1 --profile clean \
    --tag "1min_clean_$TAG"
python benchmarks/model_benchmark.py --model "$MODEL" --data "$DATA" --margins 0 0.2 1 \
    --out "benchmarks/results/model_$TAG.json"
