#!/usr/bin/env bash
# The example programs with ONNX files: mnist_train --export-onnx writes a file that
# mnist_predict reads to the same test accuracy as the model file; PyTorch's trained LeNet-5
# (tests/data/onnx/lenet_trained.onnx) gets PyTorch's own test accuracy; bad settings and bad
# files get their messages.
#   examples/onnx_test.sh TRAIN PREDICT WORK_DIR SOURCE_DIR
set -uo pipefail
train=$1 predict=$2 work=$3 source=$4
rm -rf "$work" && mkdir -p "$work"
failures=0
source "$source/examples/test_helpers.sh"

accuracy() { "$predict" "$@" 2> "$work/predict.err" | sed -n 's/^test accuracy: //p'; }

quick=(--limit 500 --test-limit 500 --threads 1 --epochs 1)
for net in lenet resnet; do
    "$train" "${quick[@]}" --net "$net" --batch 32 --output "$work/$net.cnn" --export-onnx "$work/$net.onnx" \
        > "$work/$net.log" 2>&1 || fail "training $net with --export-onnx: $(tail -3 "$work/$net.log")"
    grep -qF "ONNX model written to $work/$net.onnx" "$work/$net.log" || fail "$net: no line about the ONNX file"
    from_model=$(accuracy "$work/$net.cnn" --limit 500)
    from_onnx=$(accuracy "$work/$net.onnx" --limit 500)
    [[ -n $from_model && $from_model == "$from_onnx" ]] ||
        fail "$net: the model file gives test accuracy '$from_model', its ONNX file '$from_onnx'"
    grep -q "records no input normalisation" "$work/predict.err" && fail "$net: the ONNX file lost its normalisation"
done

# PyTorch's own file: no normalisation recorded (pixels to [0, 1]), and PyTorch's accuracy.
expected=$(sed -n 's/.*"test_accuracy": \([0-9.]*\).*/\1/p' "$source/tests/data/onnx/lenet_trained.json")
got=$(accuracy "$source/tests/data/onnx/lenet_trained.onnx" --limit 2000)
[[ -n $expected ]] && awk -v a="$got" -v b="$expected" 'BEGIN { exit !(a == b) }' ||
    fail "PyTorch's trained LeNet-5: mnist_predict gives test accuracy '$got', PyTorch '$expected'"
grep -qF "records no input normalisation (not written by mnist_train): pixels are scaled to [0, 1]" "$work/predict.err" ||
    fail "PyTorch's file: no word about the pixels scaled to [0, 1]: $(cat "$work/predict.err")"

expect_error "$work/missing-dir/m.onnx: cannot be written" "$train" "${quick[@]}" --export-onnx "$work/missing-dir/m.onnx"
expect_error "--export-onnx $work/same.cnn is where another file of the run goes" \
    "$train" "${quick[@]}" --output "$work/same.cnn" --export-onnx "$work/same.cnn"
printf 'not a model' > "$work/garbage.onnx"
expect_error "$work/garbage.onnx: not an ONNX model: the protobuf does not parse" "$predict" "$work/garbage.onnx"
expect_error "$work/absent.onnx: no such file" "$predict" "$work/absent.onnx"

echo "$failures failures"
[[ $failures -eq 0 ]]
