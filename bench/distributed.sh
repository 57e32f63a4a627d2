#!/usr/bin/env bash
# Time per training step of data-parallel training on this machine, side by side in one
# script: for each network, one process at 2 threads (the threaded baseline), one process
# at 1 thread with the same 2 gradient shards, and 2 processes at 1 thread each under mpirun,
# alternated REPEATS times (best of each kept). Prints a Markdown table of images/s, the time
# per step and the share of the training time spent passing gradients (mnist_train's epoch
# line; it includes waiting for the slower rank).
#   bench/distributed.sh build/release/examples/mnist_train [IMAGES] [REPEATS] [NETS]
set -euo pipefail
train=$1 images=${2:-10000} repeats=${3:-2} nets=${4:-"lenet wide resnet"}
mpiexec=$(command -v mpiexec)
launch=("$mpiexec" --oversubscribe --allow-run-as-root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# images/s and the % passing gradients (0 without) of one run's epoch line.
measure() {
    local out
    out=$("$@" 2>&1) || { echo "failed: $*: $out" >&2; exit 1; }
    local line
    line=$(grep -o "epoch 1/1  lr.*" <<< "$out" | tail -n 1)
    local speed share
    speed=$(sed -E 's/.*\(([0-9]+) img\/s\).*/\1/' <<< "$line")
    share=$(grep -oE "[0-9.]+% of it passing" <<< "$line" | sed 's/%.*//' || true)
    echo "$speed ${share:-0}"
}

echo "| network | batch | run | images/s | ms per step | passing gradients |"
echo "|---|---|---|---|---|---|"
for net in $nets; do
    batch=64
    [[ $net == resnet ]] && batch=128
    flags=(--net "$net" --limit "$images" --test-limit 500 --epochs 1 --output "$work/m.cnn")
    declare -A best=() share=()
    for _ in $(seq "$repeats"); do
        for run in "threads2" "process1" "processes2"; do
            case $run in
                threads2) result=$(measure "$train" "${flags[@]}" --threads 2) ;;
                process1) result=$(measure "${launch[@]}" -np 1 "$train" --distributed --shards 2 "${flags[@]}" --threads 1) ;;
                processes2) result=$(measure "${launch[@]}" -np 2 "$train" --distributed --shards 2 "${flags[@]}" --threads 1) ;;
            esac
            read -r speed part <<< "$result"
            if [[ -z ${best[$run]:-} || $speed -gt ${best[$run]} ]]; then
                best[$run]=$speed
                share[$run]=$part
            fi
        done
    done
    for run in "threads2" "process1" "processes2"; do
        case $run in
            threads2) label="1 process, 2 threads" ;;
            process1) label="1 process, 1 thread, 2 shards" ;;
            processes2) label="2 processes, 1 thread each" ;;
        esac
        ms=$(awk -v b="$batch" -v s="${best[$run]}" 'BEGIN { printf "%.1f", 1000 * b / s }')
        echo "| $net | $batch | $label | ${best[$run]} | $ms | ${share[$run]}% |"
    done
    unset best share
done
