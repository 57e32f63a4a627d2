#!/usr/bin/env bash
# The example programs as a user meets them on the command line: every bad flag, data
# directory or output place gets its message before any training, a good run's progress
# line fits an 80-column terminal, and mnist_predict goes on past an unreadable image.
#   examples/cli_test.sh TRAIN PREDICT WORK_DIR SOURCE_DIR STRIP_METADATA MAKE_CIFAR
set -uo pipefail
train=$1 predict=$2 work=$3 source=$4 strip=$5 make_cifar=$6
rm -rf "$work" && mkdir -p "$work"
failures=0
source "$source/examples/test_helpers.sh"

quick=(--limit 500 --test-limit 1000 --threads 1)
expect_error "--data $work/nowhere: no such directory" "$train" --data "$work/nowhere"
mkdir -p "$work/wrong"
touch "$work/wrong/images.idx"
expect_error "--data $work/wrong: has neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz (IDX), data_batch_1.bin (CIFAR-10), train.bin (CIFAR-100) nor train/ and test/ folders of class folders of images" "$train" --data "$work/wrong"
expect_error "--epochs must be at least 1" "$train" --epochs 0
expect_error "--epochs needs a value, got an empty one" "$train" --epochs ""
expect_error "--resume needs a value, got an empty one" "$train" --resume ""
expect_error "--epochs takes a whole number from 0 to" "$train" --epochs 0x10
expect_error "--epochs takes a whole number from 0 to" "$train" --epochs inf
expect_error "--epochs takes a whole number from 0 to" "$train" --epochs 1e400
expect_error "--lr takes a finite decimal number, got 'inf'" "$train" --lr inf
expect_error "--lr takes a finite decimal number, got '0x1p-3'" "$train" --lr 0x1p-3
expect_error "--epochs is given twice" "$train" --epochs 3 --epochs 4
expect_error "--label-smoothing takes a number from 0 to 1, got 1.500000" "$train" --label-smoothing 1.5
expect_error "--warmup 3 leaves none of the 3 epochs to the schedule" "$train" --epochs 3 --warmup 3
expect_error "--crop applies to --augment, which is off" "$train" --crop 2
expect_error "--augment is a switch: --augment, or --augment=no to turn it off; got 'maybe'" "$train" --augment=maybe
expect_error "--threads takes a whole number from 0 to 256, got '100000'" "$train" --threads 100000
expect_error "unknown flag --epoch (see --help)" "$train" --epoch 3
expect_error "$work/missing-dir/m.cnn: cannot be written" "$train" "${quick[@]}" --output "$work/missing-dir/m.cnn"
expect_error "the training curves go to $work/m.svg, so the model needs another name" \
    "$train" "${quick[@]}" --output "$work/m.svg"
expect_error "/dev/null: is a character device; only a regular file is replaced by a save" \
    "$train" "${quick[@]}" --output /dev/null
[[ -c /dev/null ]] || fail "/dev/null is no longer a device"

# A good run on a terminal 80 columns wide: no progress line (redrawn in place, so one that
# wrapped would stack up) is longer.
"$train" "${quick[@]}" --epochs 2 --output "$work/model.cnn" > "$work/plain.log" 2>&1 ||
    fail "a plain run: $(cat "$work/plain.log")"
if command -v script > /dev/null; then
    script -qec "stty cols 80; $train ${quick[*]} --epochs 2 --output $work/tty.cnn" /dev/null > "$work/tty.log" 2>&1
    longest=$(tr '\r' '\n' < "$work/tty.log" | grep ETA | awk '{ if (length($0) > n) n = length($0) } END { print n + 0 }')
    if [[ $longest -gt 80 || $longest -eq 0 ]] || ! grep -q "(run " "$work/tty.log"; then
        fail "on an 80-column terminal the longest line has $longest columns, or no ETA for the run"
    fi
fi
# The output directory vanishes during training: the model is not lost but saved to a
# temporary file that the error names, and the exit status says the save failed.
mkdir -p "$work/vanish"
"$train" --limit 3000 --epochs 6 --threads 1 --output "$work/vanish/m.cnn" > "$work/vanish.log" 2> "$work/vanish.err" &
pid=$!
for _ in $(seq 600); do
    grep -q "^epoch 1/6" "$work/vanish.log" && break
    sleep 0.05
done
rm -rf "$work/vanish"
status=0
wait "$pid" || status=$?
kept=$(sed -nE 's/.*the trained model was saved to (.*) instead$/\1/p' "$work/vanish.err")
if [[ $status -ne 1 || -z $kept || ! -s $kept ]] || ! grep -q "test accuracy:" "$work/vanish.log"; then
    fail "a failed final save (exit $status): $(cat "$work/vanish.err")"
fi
[[ -n $kept ]] && rm -f "$kept"

# --threads 0: every hardware thread; more than the hardware has: a warning.
"$train" --limit 500 --test-limit 500 --epochs 1 --threads 0 --output "$work/t0.cnn" > "$work/t0.log" 2>&1
grep -q " $(nproc) thread(s)" "$work/t0.log" || fail "--threads 0 did not use $(nproc) threads"
"$train" --limit 500 --test-limit 500 --epochs 1 --threads $(($(nproc) + 1)) --output "$work/t3.cnn" > /dev/null 2> "$work/t3.err"
grep -q "warning: $(($(nproc) + 1)) threads on $(nproc) hardware threads" "$work/t3.err" ||
    fail "no warning for more threads than the hardware has"

# --resume takes only --threads beside it.
cp "$work/model.cnn" "$work/copy.cnn"
expect_error "--epochs cannot be used here: with --resume the settings come from the checkpoint" \
    "$train" --resume "$work/no.checkpoint" --epochs 10

# mnist_predict: the shipped images, a missing one and a device, in one call.
status=0
"$predict" "$work/model.cnn" "$source/examples/data/ankle-boot.pgm" "$work/none.pgm" /dev/zero \
    "$source/examples/data/trouser.pgm" > "$work/predict.out" 2> "$work/predict.err" || status=$?
if [[ $status -ne 1 ]] || [[ $(grep -c '%)$' "$work/predict.out") -ne 2 ]] ||
    ! grep -q "2 of 4 images could not be classified" "$work/predict.err"; then
    fail "mnist_predict past unreadable images (exit $status): $(cat "$work/predict.out" "$work/predict.err")"
fi
# Damaged PGM files: a pixel above maxval, bytes after the pixels, a negative width.
{ printf 'P5\n28 28\n100\n'; head -c 784 /dev/zero | tr '\0' '\145'; } > "$work/above.pgm"
expect_error "pixel 0 is 101, above maxval 100" "$predict" "$work/model.cnn" "$work/above.pgm"
{ printf 'P5\n28 28\n255\n'; head -c 790 /dev/zero; } > "$work/long.pgm"
expect_error "has 6 bytes after the 784 pixels" "$predict" "$work/model.cnn" "$work/long.pgm"
printf 'P2\n-28 28\n255\n' > "$work/negative.pgm"
expect_error "the width at offset 3 is not a whole number" "$predict" "$work/model.cnn" "$work/negative.pgm"

# A model saved by save_model without the trainer's metadata predicts, and says how; damaged
# metadata is an error naming the key (it used to be map::at or stod).
"$strip" "$work/model.cnn" "$work/bare.cnn"
if ! "$predict" "$work/bare.cnn" "$source/examples/data/trouser.pgm" > "$work/bare.out" 2> "$work/bare.err" ||
    ! grep -q "records no input normalisation" "$work/bare.err" || ! grep -qE 'trouser.pgm: [0-9] \(' "$work/bare.out"; then
    fail "mnist_predict on a model without metadata: $(cat "$work/bare.out" "$work/bare.err")"
fi
"$strip" "$work/model.cnn" "$work/damaged.cnn" $'normalization_mean=abc\nnormalization_deviation=1\n'
expect_error "damaged.cnn: its metadata normalization_mean='abc' is not a number" \
    "$predict" "$work/damaged.cnn" "$source/examples/data/trouser.pgm"

# Colour data (a CIFAR-10 directory written by a test tool): a cutout larger than the images,
# a greyscale image for a colour model, a model given another data set's test set, and
# damaged input_shape metadata.
"$make_cifar" "$work/cifar" 100
expect_error "--cutout 40 is larger than the 32x32 images" "$train" --data "$work/cifar" --cutout 40
"$train" --data "$work/cifar" --epochs 1 --threads 1 --output "$work/colour.cnn" > "$work/colour.log" 2>&1 ||
    fail "training on CIFAR-10 files: $(cat "$work/colour.log")"
grep -q "training on 500 3x32x32 images" "$work/colour.log" ||
    fail "the trainer did not report 3x32x32 images: $(head -c 600 "$work/colour.log")"
expect_error "trouser.pgm: is a greyscale PGM image; the model takes images of 3 channels (PPM)" \
    "$predict" "$work/colour.cnn" "$source/examples/data/trouser.pgm"
expect_error "the model takes 3x32x32 images of 10 classes; the test set in /usr/share/datasets/fashion-mnist has 1x28x28 images of 10" \
    "$predict" "$work/colour.cnn" --limit 10
"$strip" "$work/colour.cnn" "$work/shape.cnn" $'input_shape=3x32\n'
expect_error "shape.cnn: its metadata input_shape='3x32' is not channels x rows x cols" \
    "$predict" "$work/shape.cnn" "$work/cifar/class0.ppm"

# CIFAR-100's two labels: --labels coarse learns the 20 superclasses (and the predictor, seeing
# a model of 20 classes, reads the test set's coarse labels); other values and formats are refused.
"$make_cifar" "$work/cifar100" 100 --cifar100
expect_error "--labels takes fine or coarse, got 'medium'" "$train" --data "$work/cifar100" --labels medium
expect_error "--labels coarse applies to CIFAR-100 (train.bin, test.bin); $work/cifar holds another format" \
    "$train" --data "$work/cifar" --labels coarse
"$train" --data "$work/cifar100" --labels coarse --epochs 1 --threads 1 --output "$work/coarse.cnn" > "$work/coarse.log" 2>&1 ||
    fail "training on CIFAR-100's coarse labels: $(cat "$work/coarse.log")"
grep -q "training on 500 3x32x32 images" "$work/coarse.log" && grep -q "lower" "$work/coarse.log" ||
    fail "the coarse run did not train on 500 images with the superclass names: $(head -c 900 "$work/coarse.log")"
"$predict" "$work/coarse.cnn" --data "$work/cifar100" > "$work/coarse-predict.log" 2>&1 &&
    grep -q "100 test images" "$work/coarse-predict.log" ||
    fail "predicting CIFAR-100's coarse labels: $(cat "$work/coarse-predict.log")"

# Folders of images: a bad --image-size, a missing test/ folder, an image of another size
# (named, unless --image-size resizes it), a model's test set of other images.
"$make_cifar" "$work/folders" 100 --folders
expect_error "--image-size takes HxW, two whole numbers from 1 to 9999, got '32'" \
    "$train" --data "$work/folders" --image-size 32
mv "$work/folders/test" "$work/folders-test"
expect_error "--data $work/folders: has no test/ folder beside its train/ folder" "$train" --data "$work/folders" --epochs 1
mv "$work/folders-test" "$work/folders/test"
cp "$work/folders/class0.png" "$work/folders-class0.png"
"$train" --data "$work/folders" --epochs 1 --threads 1 --image-size 16x16 --output "$work/small.cnn" > "$work/small.log" 2>&1 ||
    fail "training on folders resized to 16x16: $(cat "$work/small.log")"
grep -q "training on 500 3x16x16 images" "$work/small.log" ||
    fail "--image-size 16x16 did not give 3x16x16 images: $(head -c 600 "$work/small.log")"
expect_error "class0.png: is 32x32 (width x height), the data set's images 16x16; resize them, or choose SizeMismatch::resize" \
    "$predict" "$work/small.cnn" "$work/folders-class0.png"
"$predict" "$work/small.cnn" "$work/folders-class0.png" --resize > "$work/resized.out" 2>&1 ||
    fail "mnist_predict --resize: $(cat "$work/resized.out")"

echo "$failures failures"
[[ $failures -eq 0 ]]
