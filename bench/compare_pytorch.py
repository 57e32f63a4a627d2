#!/usr/bin/python3
"""Side by side: one epoch of training on Fashion-MNIST in this library and in PyTorch.

Trains LeNet-5, the wide CNN, the small ResNet and the small MobileNet, both with batch
normalisation (the same architectures as examples/networks.hpp; --nets chooses) for one epoch, batch 64, SGD with momentum 0.9 and learning rate 0.01, at 1 and at
2 threads, and prints images/s of the training loop (data conversion, forward,
loss, backward, update; no evaluation) and their ratio, then how each library's
speed grows from 1 thread to 2. Each figure is the best of --repeats runs; the runs
alternate library by library and thread count by thread count (ours 1, PyTorch 1,
ours 2, PyTorch 2, then again), so that a slow or fast minute of a shared machine
falls on all four alike. It also prints the peak resident memory of each process (the
largest of its runs, from wait4's ru_maxrss): the whole process, data set, program and
libraries included.

PyTorch must run on OpenBLAS (scripts/install-deps compare installs it; the script stops
if PyTorch loaded another BLAS), and gets its best settings: OPENBLAS_NUM_THREADS=1, OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset, and glibc's malloc told not to return memory to the
system (GLIBC_TUNABLES), which otherwise costs it a page fault per fresh page.

    /usr/bin/python3 bench/compare_pytorch.py --trainer build/release/examples/mnist_train

With --baseline OTHER_TRAINER the other side is not PyTorch but another build of our
own trainer (an earlier commit's), run the same way and alternated the same way: how a
change to the library moves its speed.

    /usr/bin/python3 bench/compare_pytorch.py --trainer build/release/examples/mnist_train \
        --baseline /tmp/before/build/examples/mnist_train --limit 30000

With --recipe EPOCHS it instead trains the small ResNet with mnist_train's ResNet recipe on
both sides for EPOCHS epochs (default schedule shortened to them), at the largest --threads:
Nesterov momentum 0.9, learning rate 0.1 warmed up linearly batch by batch over the first
epoch, then cosine epoch by epoch; weight decay 5e-4 on weights (convolution and dense
weights, batch-normalisation scales), none on biases; batch 128; label smoothing 0.1;
random crops with 3 pixels of zero padding and horizontal flips, drawn per image; inputs
standardised with the training set's mean and deviation. It prints each epoch's test
accuracy and training images/s for both, side by side: the same recipe, two implementations
(their random initialisation and draws differ, so accuracies agree only to a few tenths).

    /usr/bin/python3 bench/compare_pytorch.py --trainer build/release/examples/mnist_train --recipe 3
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import time

DATA = "/usr/share/datasets/fashion-mnist"


def start_torch(threads):
    """In a PyTorch worker: threads, seed, and the BLAS it loaded, printed for run_torch_worker to check."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.split()[-1].lower()})
    print("blas " + (",".join(blas) or "none"))


def pixel_statistics(images, unbiased):
    """The mean and standard deviation of uint8 images scaled to [0, 1], summed in double chunk
    by chunk: a float copy of the whole training set would add its size four times over to this
    process's peak memory, which the comparison reports."""
    total = squares = 0.0
    for first in range(0, len(images), 1000):
        chunk = images[first:first + 1000].double().div_(255)
        total += chunk.sum().item()
        squares += chunk.square_().sum().item()
    count = images.numel()
    mean = total / count
    return mean, ((squares - count * mean * mean) / (count - 1 if unbiased else count)) ** 0.5


def torch_worker(net_name, threads, data, limit):
    import numpy as np
    import torch
    import torch.nn as nn

    start_torch(threads)

    images, labels = load_idx_split(data, "train")
    if limit:
        images, labels = images[:limit], labels[:limit]
    mean, std = pixel_statistics(images, unbiased=True)

    net = make_torch_net(net_name)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(len(images))
    start = time.perf_counter()
    for first in range(0, len(images), 64):
        index = order[first:first + 64]
        x = (images[index].float().div_(255) - mean) / std
        loss = loss_fn(net(x), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    print(f"images/s {len(images) / seconds:.1f}")


def make_torch_net(net_name):
    """The PyTorch twin of examples/networks.hpp's network `net_name`."""
    import torch.nn as nn

    class Block(nn.Module):
        # examples/networks.hpp's basic_block / projection_block
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.shortcut(x))

    def depthwise_block(cin, cout, stride):
        # examples/networks.hpp's depthwise_block
        return [nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    if net_name == "mobilenet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            *depthwise_block(16, 32, 1), *depthwise_block(32, 64, 2), *depthwise_block(64, 64, 1),
            *depthwise_block(64, 128, 2), *depthwise_block(128, 128, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    if net_name == "resnet":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            Block(16, 16, 1), Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 1), Block(32, 64, 2), Block(64, 64, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    if net_name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def load_idx_split(data, prefix):
    """Fashion-MNIST's `prefix` ("train" or "t10k") split as uint8 tensors N x 1 x 28 x 28 and int64 labels."""
    import numpy as np
    import torch

    def idx(path, offset):
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)

    images = idx(os.path.join(data, f"{prefix}-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    labels = idx(os.path.join(data, f"{prefix}-labels-idx1-ubyte.gz"), 8).astype(np.int64)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


def torch_recipe_worker(threads, data, epochs):
    """mnist_train's ResNet recipe (see the top of this file) in PyTorch; prints one line per epoch."""
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    start_torch(threads)
    images, labels = load_idx_split(data, "train")
    test_images, test_labels = load_idx_split(data, "t10k")
    mean, std = pixel_statistics(images, unbiased=False)
    net = make_torch_net("resnet")
    decayed = [p for name, p in net.named_parameters() if not name.endswith("bias")]
    undecayed = [p for name, p in net.named_parameters() if name.endswith("bias")]
    base, batch, pad = 0.1, 128, 28 // 8
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": 5e-4}, {"params": undecayed, "weight_decay": 0.0}],
                                lr=base, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    steps = (len(images) + batch - 1) // batch
    line = torch.arange(28)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images))
        start = time.perf_counter()
        for step in range(steps):
            if epoch < 1:  # warm-up, batch by batch, over the first epoch
                rate = base * (step + 1) / steps
            else:  # cosine over the remaining epochs, epoch by epoch
                rate = base * (1 + math.cos(math.pi * (epoch - 1) / max(epochs - 1, 1))) / 2
            for group in optimizer.param_groups:
                group["lr"] = rate
            index = order[step * batch:(step + 1) * batch]
            n = len(index)
            padded = F.pad(images[index], (pad, pad, pad, pad))  # zero bytes around each image
            top = torch.randint(0, 2 * pad + 1, (n,))
            left = torch.randint(0, 2 * pad + 1, (n,))
            flip = torch.randint(0, 2, (n,)).bool()
            rows = top[:, None] + line[None, :]
            cols = left[:, None] + torch.where(flip[:, None], 27 - line[None, :], line[None, :])
            crops = padded[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
            x = (crops.float().div_(255) - mean) / std
            loss = loss_fn(net(x), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - start
        net.eval()
        correct = 0
        with torch.no_grad():
            for first in range(0, len(test_images), 500):
                x = (test_images[first:first + 500].float().div_(255) - mean) / std
                correct += (net(x).argmax(1) == test_labels[first:first + 500]).sum().item()
        print(f"epoch {epoch + 1} accuracy {correct / len(test_images):.4f} images/s {len(images) / seconds:.1f}",
              flush=True)


def run_recipe(args, threads):
    """--recipe: the ResNet recipe on both sides; prints a table of the epochs."""
    scratch = os.path.join(args.scratch, "compare-recipe.cnn")
    ours_out, ours_memory = run_measured([args.trainer, "--net", "resnet", "--epochs", str(args.recipe),
                                          "--threads", str(threads), "--data", args.data, "--output", scratch])
    ours = [(float(m.group(1)), float(m.group(2))) for m in
            re.finditer(r"^epoch \d+/\d+ .* test loss [0-9.]+ acc ([0-9.]+) .*\(([0-9.]+) img/s\)", ours_out, re.M)]
    theirs_out, theirs_memory = run_torch_worker(__file__, ["--recipe", str(threads), args.data, str(args.recipe)],
                                                 threads)
    theirs = [(float(m.group(1)), float(m.group(2))) for m in
              re.finditer(r"^epoch \d+ accuracy ([0-9.]+) images/s ([0-9.]+)", theirs_out, re.M)]
    if len(ours) != args.recipe or len(theirs) != args.recipe:
        sys.exit(f"compare_pytorch.py: expected {args.recipe} epochs from each side, got:\n{ours_out}\n{theirs_out}")
    name = f"PyTorch {torch_version()}"
    print(f"ResNet recipe, {args.recipe} epochs, {threads} thread(s)")
    print(f"| epoch | this library: test accuracy | {name}: test accuracy | this library (images/s) | "
          f"{name} (images/s) | ratio |")
    print("|---|---|---|---|---|---|")
    for epoch, ((a, speed_a), (b, speed_b)) in enumerate(zip(ours, theirs), 1):
        print(f"| {epoch} | {a:.4f} | {b:.4f} | {speed_a:,.0f} | {speed_b:,.0f} | {speed_a / speed_b:.2f}x |")
    print(f"peak memory: this library {ours_memory:,.0f} MB, {name} {theirs_memory:,.0f} MB "
          f"({ours_memory / theirs_memory:.2f}x)")


def run_measured(command, env=None):
    """Runs command; returns its output (stdout and stderr in one pipe, so that neither can fill
    up while the other is read) and its peak resident memory in MB (wait4's ru_maxrss)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{os.path.basename(sys.argv[0])}: {' '.join(command)} failed ({process.returncode}):\n{out}")
    return out, usage.ru_maxrss / 1024


def run_torch_worker(script, arguments, threads):
    """Runs `script --torch-worker arguments` with PyTorch's best settings (see the top of this
    file) and stops unless it runs on OpenBLAS; returns its output and peak memory in MB."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = str(threads)
    env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"
    out, memory = run_measured([sys.executable, script, "--torch-worker", *arguments], env)
    blas = re.search(r"^blas (.*)$", out, re.M).group(1)
    if "openblas" not in blas:
        sys.exit(f"{os.path.basename(sys.argv[0])}: PyTorch runs on {blas}, not OpenBLAS: that is about half its speed "
                 "and no fair comparison. Install OpenBLAS with scripts/install-deps compare (libopenblas0-pthread).")
    return out, memory


def torch_version():
    """PyTorch's version, asked of a child process: importing torch here would put its 200 MB in
    this process, which every child it starts inherits as the floor of its ru_maxrss."""
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], check=True,
                          capture_output=True, text=True).stdout.strip()


def run_torch(net, threads, data, limit):
    out, memory = run_torch_worker(__file__, [net, str(threads), data, str(limit)], threads)
    return float(re.search(r"images/s ([0-9.]+)", out).group(1)), memory


def run_ours(trainer, net, threads, data, limit, scratch):
    out, memory = run_measured([trainer, "--net", net, "--epochs", "1", "--batch", "64", "--optimizer", "sgd",
                                "--lr", "0.01", "--momentum", "0.9", "--weight-decay", "0", "--schedule", "constant",
                                "--threads", str(threads), "--data", data, "--limit", str(limit),
                                "--output", os.path.join(scratch, f"compare-{net}.cnn")])
    return float(re.search(r"\(([0-9.]+) img/s\)", out).group(1)), memory


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--torch-worker" and sys.argv[2] == "--recipe":
        torch_recipe_worker(int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainer", required=True, help="path to mnist_train (a Release build)")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only (0: all 60,000)")
    parser.add_argument("--nets", default="lenet,wide")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--scratch", default="/tmp")
    parser.add_argument("--baseline", help="compare with this build of mnist_train instead of PyTorch")
    parser.add_argument("--recipe", type=int, metavar="EPOCHS",
                        help="train the ResNet recipe for EPOCHS epochs on both sides and compare accuracy and speed")
    args = parser.parse_args()
    if args.recipe is not None:
        if args.recipe < 2:
            sys.exit("compare_pytorch.py: --recipe takes at least 2 epochs (one of warm-up, then the schedule)")
        run_recipe(args, max(int(t) for t in args.threads.split(",")))
        return
    if args.baseline:
        other_name = "baseline"
        def run_other(net, threads, data, limit):
            return run_ours(args.baseline, net, threads, data, limit, args.scratch)
    else:
        other_name = f"PyTorch {torch_version()}"
        run_other = run_torch

    nets = args.nets.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    ours = {(net, t): [] for net in nets for t in thread_counts}
    theirs = {(net, t): [] for net in nets for t in thread_counts}
    memory_ours = {key: 0.0 for key in ours}
    memory_theirs = {key: 0.0 for key in ours}
    for net in nets:
        for _ in range(args.repeats):
            for threads in thread_counts:
                speed, memory = run_ours(args.trainer, net, threads, args.data, args.limit, args.scratch)
                ours[net, threads].append(speed)
                memory_ours[net, threads] = max(memory_ours[net, threads], memory)
                speed, memory = run_other(net, threads, args.data, args.limit)
                theirs[net, threads].append(speed)
                memory_theirs[net, threads] = max(memory_theirs[net, threads], memory)
        for threads in thread_counts:
            print(f"{net} {threads} thread(s): ours {ours[net, threads]}, {other_name} {theirs[net, threads]}",
                  file=sys.stderr)

    def best(runs, key):
        return max(runs[key])

    print(f"| network | threads | this library (images/s) | {other_name} (images/s) | ratio |")
    print("|---|---|---|---|---|")
    for net in nets:
        for threads in thread_counts:
            a, b = best(ours, (net, threads)), best(theirs, (net, threads))
            print(f"| {net} | {threads} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    print()
    print(f"| network | threads | this library (peak MB) | {other_name} (peak MB) | ratio |")
    print("|---|---|---|---|---|")
    for net in nets:
        for threads in thread_counts:
            a, b = memory_ours[net, threads], memory_theirs[net, threads]
            print(f"| {net} | {threads} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
    if len(thread_counts) > 1:
        low, high = min(thread_counts), max(thread_counts)
        print()
        print(f"| network | {high} threads / {low} (this library) | {high} threads / {low} ({other_name}) |")
        print("|---|---|---|")
        for net in nets:
            scale_ours = best(ours, (net, high)) / best(ours, (net, low))
            scale_theirs = best(theirs, (net, high)) / best(theirs, (net, low))
            print(f"| {net} | {scale_ours:.2f}x | {scale_theirs:.2f}x |")


if __name__ == "__main__":
    main()
