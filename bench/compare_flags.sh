#!/usr/bin/env bash
# A user's build against ours: mnist_train compiled as a consumer project by the
# README's plain recipe (find_package, Release, no -march flag) and the same project
# with -march=native, run alternately on one epoch of Fashion-MNIST; prints each run's
# images/s, the best of each and their ratio. The kernels choose their instruction set
# at run time, so the two should be within a few per cent.
#
#   bench/compare_flags.sh [runs=3] [images=30000]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${CNN_BUILD_DIR:-$root/build}/compare_flags
runs=${1:-3}
images=${2:-30000}
rm -rf "$work" && mkdir -p "$work"

cmake -S "$root" -B "$work/library" -DCNN_BUILD_TESTS=OFF > /dev/null
cmake --install "$work/library" --prefix "$work/prefix" > /dev/null
for kind in plain native; do
    flags=""
    [[ $kind == native ]] && flags="-march=native"
    cmake -S "$root/bench/flags" -B "$work/$kind" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
        -DCNN_EXAMPLES_DIR="$root/examples" -DCMAKE_CXX_FLAGS="$flags" > /dev/null
    cmake --build "$work/$kind" -j "$(nproc)" > /dev/null
done

rate() {  # images/s of the training epoch
    "$work/$1/mnist_train" --net "$2" --epochs 1 --limit "$images" --threads "$3" --output "$work/$1.cnn" |
        sed -nE 's/^epoch 1\/1 .*\(([0-9]+) img\/s\)$/\1/p'
}
echo "network threads build   images/s per run          best"
for net in lenet wide; do
    for threads in 1 2; do
        declare -A best=([plain]=0 [native]=0) all=([plain]="" [native]="")
        for ((r = 0; r < runs; ++r)); do
            for kind in plain native; do
                value=$(rate "$kind" "$net" "$threads")
                all[$kind]+="$value "
                ((value > best[$kind])) && best[$kind]=$value
            done
        done
        for kind in plain native; do
            printf '%-7s %-7s %-7s %-25s %s\n' "$net" "$threads" "$kind" "${all[$kind]}" "${best[$kind]}"
        done
        awk -v p="${best[plain]}" -v n="${best[native]}" -v net="$net" -v t="$threads" \
            'BEGIN { printf "%s, %s thread(s): plain / native = %.3f\n", net, t, p / n }'
        unset best all
    done
done
