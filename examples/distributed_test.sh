#!/usr/bin/env bash
# mnist_train --distributed over Open MPI, on this machine (loopback): 2 and 3 processes train
# the model of 1 process (the default 6 gradient shards), byte for byte, and only rank 0 prints and
# writes; a run interrupted with SIGINT resumes in another number of processes to the same
# model; settings that cannot work are refused.
#   distributed_test.sh MNIST_TRAIN MPIEXEC WORK_DIR
set -euo pipefail
train=$1 mpiexec=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
launch=("$mpiexec" --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo)
flags=(--limit 3000 --test-limit 1000 --validation 0.1 --seed 3 --threads 1)
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
# Waits (up to 30 s) until FILE has a line matching PATTERN.
wait_for() {
    for _ in $(seq 600); do
        grep -q "$1" "$2" && return
        sleep 0.05
    done
}
expect_error() {
    local expected=$1
    shift
    local out status=0
    out=$("$@" 2>&1) || status=$?
    if [[ $status -eq 0 || $out != *"$expected"* ]]; then
        fail "expected '$expected' from $*, got status $status: $out"
    fi
}

for processes in 1 2 3; do
    "${launch[@]}" -np $processes "$train" --distributed "${flags[@]}" --epochs 4 --output "$work/np$processes.cnn" \
        > "$work/np$processes.log" 2>&1 || fail "$processes process(es): $(cat "$work/np$processes.log")"
done
cp "$work/np2.log" "$work/two.log"
cmp -s "$work/np1.cnn" "$work/np2.cnn" || fail "the models of 1 and 2 processes differ"
cmp -s "$work/np1.cnn" "$work/np3.cnn" || fail "the models of 1 and 3 processes differ"
grep -q "in each of 2 processes, 6 gradient shards per batch" "$work/two.log" || fail "no distributed summary: $(head -c 800 "$work/two.log")"
# (mpirun gives rank 0 a terminal when it has one, so progress lines may precede an epoch's line)
[[ $(grep -o "epoch [0-9]/4  lr" "$work/two.log" | wc -l) -eq 4 ]] || fail "the epochs were not reported once each (rank 0 alone)"
grep -q "of it passing gradients" "$work/two.log" || fail "no share of time passing gradients"
grep -q "^test accuracy" "$work/two.log" || fail "no test accuracy"
echo "1, 2 and 3 processes: the same model; $(grep -o 'epoch 4/4  lr.*' "$work/two.log")"

# Interrupted (SIGINT to a process started without mpirun: Open MPI's singleton, one
# process), resumed by 2 processes: the model of the uninterrupted run.
"$train" --distributed "${flags[@]}" --epochs 8 --output "$work/straight.cnn" > "$work/straight.log" 2>&1 ||
    fail "uninterrupted run: $(cat "$work/straight.log")"
"$train" --distributed "${flags[@]}" --epochs 8 --output "$work/resumed.cnn" > "$work/interrupted.log" 2>&1 &
pid=$!
wait_for "^epoch 1/8" "$work/interrupted.log"
kill -INT "$pid"
status=0
wait "$pid" || status=$?
if [[ $status -ne 130 ]]; then
    fail "the interrupted run exited with $status, expected 130: $(cat "$work/interrupted.log")"
else
    # A distributed checkpoint resumed without --distributed is refused.
    expect_error "the checkpoint was written by a --distributed run of 6 gradient shards: resume it with --distributed" \
        "$train" --resume "$work/resumed.cnn.checkpoint"
    "${launch[@]}" -np 2 "$train" --distributed --resume "$work/resumed.cnn.checkpoint" --threads 1 > "$work/resumed.log" 2>&1 ||
        fail "resuming in 2 processes: $(cat "$work/resumed.log")"
    cmp -s "$work/straight.cnn" "$work/resumed.cnn" || fail "the run resumed by 2 processes differs from the uninterrupted one"
    echo "interrupted with 1 process, resumed with 2: the model of the uninterrupted run"
fi

# A rank killed mid-run (as a crash would): mpirun ends the job, and the checkpoint rank 0
# wrote after the last whole epoch resumes in 2 processes to the uninterrupted model.
"${launch[@]}" -np 2 "$train" --distributed "${flags[@]}" --epochs 8 --output "$work/crash.cnn" > "$work/crash.log" 2>&1 &
pid=$!
wait_for "epoch 2/8  lr" "$work/crash.log"
sleep 0.3
pkill -KILL -n -f -- "--output $work/crash.cnn" || true
status=0
wait "$pid" || status=$?
if [[ $status -eq 0 || -f "$work/crash.cnn" ]]; then
    fail "killing a rank did not end the job (status $status): $(cat "$work/crash.log")"
elif [[ ! -f "$work/crash.cnn.checkpoint" ]]; then
    fail "no checkpoint after the epochs before the crash: $(cat "$work/crash.log")"
else
    "${launch[@]}" -np 2 "$train" --distributed --resume "$work/crash.cnn.checkpoint" --threads 1 > "$work/after-crash.log" 2>&1 ||
        fail "resuming after the crash: $(cat "$work/after-crash.log")"
    cmp -s "$work/straight.cnn" "$work/crash.cnn" || fail "the run resumed after a crash differs from the uninterrupted one"
    [[ ! -f "$work/crash.cnn.checkpoint" ]] || fail "the finished run left its checkpoint behind"
    echo "a rank killed after epoch 2: the job ended (status $status); $(grep -o 'resuming at.*' "$work/after-crash.log"); the same model"
fi

# Refused: fewer shards than processes, and --shards without --distributed.
expect_error "--shards 1 is fewer than the 2 processes; each needs a shard" \
    "${launch[@]}" -np 2 "$train" --distributed --shards 1 "${flags[@]}" --epochs 4 --output "$work/bad.cnn"
expect_error "--shards applies to --distributed training" "$train" --shards 2 "${flags[@]}" --output "$work/bad.cnn"

[[ $failures -eq 0 ]] || exit 1
echo "distributed training: all checks passed"
