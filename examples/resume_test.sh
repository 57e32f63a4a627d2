#!/usr/bin/env bash
# mnist_train interrupted with SIGINT (as Ctrl-C sends it) must write a checkpoint
# and exit; --resume must then produce the very model file of an uninterrupted run.
set -euo pipefail
train=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
flags=(--limit 6000 --test-limit 1000 --epochs 8 --seed 5 --threads 2)

"$train" "${flags[@]}" --output "$work/straight.cnn" > "$work/straight.log"

"$train" "${flags[@]}" --output "$work/resumed.cnn" > "$work/interrupted.log" &
pid=$!
# Interrupt once the first epoch is reported: seven epochs are still to come.
for _ in $(seq 600); do
    grep -q "^epoch 1/8" "$work/interrupted.log" && break
    sleep 0.05
done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
if [[ $status -ne 130 ]]; then
    echo "the interrupted run exited with $status, expected 130 (it may have finished before the signal)"
    cat "$work/interrupted.log"
    exit 1
fi
grep -q "checkpoint written to $work/resumed.cnn.checkpoint" "$work/interrupted.log"
[[ -f "$work/resumed.cnn.checkpoint" && ! -f "$work/resumed.cnn" ]]

"$train" --resume "$work/resumed.cnn.checkpoint" --threads 2 > "$work/resumed.log"
cmp "$work/straight.cnn" "$work/resumed.cnn"
[[ ! -f "$work/resumed.cnn.checkpoint" ]]
echo "interrupted at: $(grep interrupted "$work/interrupted.log")"
echo "resumed run and uninterrupted run wrote identical model files"
