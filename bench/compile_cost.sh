#!/bin/sh
# What the library costs to compile: CPU seconds and peak memory of g++ -O2 on the
# trainer (examples/mnist_train.cpp) and on a 30-layer residual network
# (bench/compile/resnet30.cpp), best of three. With a second checkout's path it also
# times that checkout's trainer, alternating with ours, for a before/after ratio.
#
#   bench/compile_cost.sh                    # this checkout
#   bench/compile_cost.sh /tmp/before        # and an earlier one (e.g. git worktree add /tmp/before v0.2.0)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
baseline=${1:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# seconds and KB of one compile: "user_seconds max_kb"
measure() {
    root=$1 source=$2
    /usr/bin/time -f "%U %M" -o "$out/time" g++ -std=c++20 -O2 -I"$root/include" -I"$root/examples" \
        -c "$source" -o "$out/object.o"
    cat "$out/time"
}
best() { sort -n | head -1; }

: > "$out/ours"
: > "$out/theirs"
: > "$out/resnet"
for run in 1 2 3; do
    measure "$here" "$here/examples/mnist_train.cpp" >> "$out/ours"
    [ -n "$baseline" ] && measure "$baseline" "$baseline/examples/mnist_train.cpp" >> "$out/theirs"
    measure "$here" "$here/bench/compile/resnet30.cpp" >> "$out/resnet"
done
ours=$(best < "$out/ours")
echo "mnist_train.cpp:        $(echo "$ours" | cut -d' ' -f1) s, $(echo "$ours" | cut -d' ' -f2) KB"
if [ -n "$baseline" ]; then
    theirs=$(best < "$out/theirs")
    echo "mnist_train.cpp before: $(echo "$theirs" | cut -d' ' -f1) s, $(echo "$theirs" | cut -d' ' -f2) KB"
    echo "ratio: $(echo "$ours $theirs" | awk '{printf "%.3f", $1 / $3}')"
fi
resnet=$(best < "$out/resnet")
echo "resnet30.cpp:           $(echo "$resnet" | cut -d' ' -f1) s, $(echo "$resnet" | cut -d' ' -f2) KB"
