#!/usr/bin/python3
"""Golden values for the layers and the loss, from an independent implementation: PyTorch in float64.

Writes tests/data/golden_layers.json: for each case, the layer and its settings, the
input x and the output gradient dy (seeded), and what PyTorch computes from them: the
output y and the input gradient dx (and, for layers with parameters, their gradients).
The tests read the committed file and match it to 1e-10; they do not need PyTorch.
scripts/test reruns this script with --check when Debian's python3-torch is installed:
every committed number must be what PyTorch computes now, to 1e-12.

    /usr/bin/python3 scripts/golden.py [OUTPUT]     (default: tests/data/golden_layers.json)
    /usr/bin/python3 scripts/golden.py --check      compare with the committed file
"""
import json
import os
import sys

import torch
from torch import nn

torch.set_default_dtype(torch.float64)
torch.manual_seed(20261130)


def case(name, settings, module, shape, scale=2.0, offset=0.0, mode=None):
    """One case: x ~ N(offset, scale^2), y = module(x), dx for a random dy.

    For a module with parameters, they are drawn too and recorded (in the library's order:
    weights, biases, buffers) with their gradients and their values after the pass (a
    training pass moves batch normalisation's running statistics)."""
    parameters = parameter_list(module)
    with torch.no_grad():
        for p in parameters:
            if p.requires_grad:
                p.copy_(torch.randn(*p.shape) * 0.5 + 1.0)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(*module.running_mean.shape))
            module.running_var.copy_(torch.rand(*module.running_var.shape) + 0.5)
    before = flat(parameters)
    if mode is not None:
        module.train(mode == "training")
    x = (torch.randn(*shape) * scale + offset).requires_grad_(True)
    y = module(x)
    dy = torch.randn(*y.shape)
    y.backward(dy)
    result = {
        "layer": name,
        "settings": settings,
        "shape": list(shape),
        "x": x.detach().flatten().tolist(),
        "dy": dy.flatten().tolist(),
        "y": y.detach().flatten().tolist(),
        "dx": x.grad.flatten().tolist(),
    }
    if mode is not None:
        result["mode"] = mode
    if list(y.shape) != list(shape):
        result["output_shape"] = list(y.shape)
    if parameters:
        result["parameters"] = before
        result["parameter_gradients"] = [g for p in parameters if p.requires_grad for g in p.grad.flatten().tolist()]
        result["parameters_after"] = flat(parameters)
    return result


def loss_case(smoothing, shape, labels, scale=2.0):
    """The training loss: nn.CrossEntropyLoss(label_smoothing=smoothing), the mean over the batch,
    of logits x (N x K x 1 x 1) and the labels; y is the loss, dx its gradient (dy = 1)."""
    x = (torch.randn(*shape) * scale).requires_grad_(True)
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)(x.flatten(1), torch.tensor(labels))
    loss.backward()
    return {"layer": "CrossEntropy", "settings": {"label_smoothing": smoothing}, "shape": list(shape),
            "labels": labels, "x": x.detach().flatten().tolist(), "dy": [1.0], "y": [loss.item()],
            "dx": x.grad.flatten().tolist(), "output_shape": [1, 1, 1, 1]}


def conv(channels, filters, kernel, stride, padding, bias, dilation=(1, 1), groups=1):
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]
    settings = {"in_channels": channels, "filters": filters, "kernel": list(kernel), "stride": pair(stride),
                "padding": pair(padding), "dilation": pair(dilation), "bias": bias}
    if groups != 1:
        settings["groups"] = groups
    return settings


def pool(window, stride, padding, count_padding=True):
    pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]
    return {"window": list(window), "stride": stride, "padding": pair(padding), "count_padding": count_padding}


def parameter_list(module):
    """The module's values in the library's order: weights, biases, then buffers."""
    if isinstance(module, nn.BatchNorm2d):
        return [module.weight, module.bias, module.running_mean, module.running_var]
    if isinstance(module, nn.Conv2d):
        return [module.weight] + ([module.bias] if module.bias is not None else [])
    return []


def flat(tensors):
    return [v for t in tensors for v in t.detach().flatten().tolist()]


COMMITTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden_layers.json")


def check(document):
    """Exit 1 unless the committed file holds the cases of `document` (numbers to 1e-12)."""
    with open(COMMITTED) as f:
        committed = json.load(f)
    if len(committed["cases"]) != len(document["cases"]):
        sys.exit(f"golden: {COMMITTED} has {len(committed['cases'])} cases, the script makes {len(document['cases'])}")
    for index, (old, new) in enumerate(zip(committed["cases"], document["cases"])):
        for key in ("layer", "settings", "shape"):
            if old[key] != new[key]:
                sys.exit(f"golden: case {index}: {key} {old[key]} in the file, {new[key]} now")
        for key in ("mode", "output_shape"):
            if old.get(key) != new.get(key):
                sys.exit(f"golden: case {index}: {key} {old.get(key)} in the file, {new.get(key)} now")
        for key in ("labels", "x", "dy", "y", "dx", "parameters", "parameter_gradients", "parameters_after"):
            if (key in old) != (key in new):
                sys.exit(f"golden: case {index} ({old['layer']}): {key} in only one of the file and the script")
            if key not in old:
                continue
            worst = max((abs(a - b) / max(1.0, abs(b)) for a, b in zip(old[key], new[key])), default=0.0)
            if len(old[key]) != len(new[key]) or worst > 1e-12:
                sys.exit(f"golden: case {index} ({old['layer']}): {key} differs by {worst:g}")
    print(f"golden: the {len(committed['cases'])} committed cases are what PyTorch {torch.__version__} computes")


def main():
    checking = len(sys.argv) > 1 and sys.argv[1] == "--check"
    out = sys.argv[1] if len(sys.argv) > 1 and not checking else COMMITTED
    cases = [
        case("Sigmoid", {}, nn.Sigmoid(), (2, 3, 5, 4)),
        case("Tanh", {}, nn.Tanh(), (2, 3, 5, 4)),
        case("LeakyReLU", {"slope": 0.2}, nn.LeakyReLU(0.2), (2, 3, 5, 4)),
        case("LeakyReLU", {"slope": 0.01}, nn.LeakyReLU(), (3, 2, 3, 7)),
        case("ELU", {"alpha": 0.7}, nn.ELU(0.7), (2, 3, 5, 4)),
        case("ELU", {"alpha": 1.0}, nn.ELU(), (3, 2, 3, 7), scale=6.0),
        case("GELU", {"approximation": "none"}, nn.GELU(), (2, 3, 5, 4)),
        case("GELU", {"approximation": "tanh"}, nn.GELU(approximate="tanh"), (2, 3, 5, 4)),
        case("Softmax", {}, nn.Softmax(dim=1), (2, 5, 3, 2)),
        case("Softmax", {}, nn.Softmax(dim=1), (4, 10, 1, 1), scale=30.0),
        # batch normalisation: batch statistics and running statistics, convolution and dense
        # features, a large mean (the centred forms must keep their digits), PyTorch's defaults
        # and other settings
        case("BatchNorm2D", {"momentum": 0.1, "epsilon": 1e-5}, nn.BatchNorm2d(4), (3, 4, 5, 3), mode="training"),
        case("BatchNorm2D", {"momentum": 0.3, "epsilon": 1e-3}, nn.BatchNorm2d(3, eps=1e-3, momentum=0.3),
             (2, 3, 7, 1), offset=50.0, mode="training"),
        case("BatchNorm2D", {"momentum": 0.1, "epsilon": 1e-5}, nn.BatchNorm2d(6), (5, 6, 1, 1), mode="training"),
        case("BatchNorm2D", {"momentum": 0.1, "epsilon": 1e-5}, nn.BatchNorm2d(6), (2, 6, 1, 1), mode="training"),
        case("BatchNorm2D", {"momentum": 0.1, "epsilon": 1e-5}, nn.BatchNorm2d(3), (2, 3, 4, 5), mode="inference"),
        case("BatchNorm2D", {"momentum": 0.1, "epsilon": 1e-5}, nn.BatchNorm2d(3), (1, 3, 4, 5), mode="inference"),
        # dropout: in inference the identity (training masks are random in both libraries:
        # tests/test_normalization.cpp checks them by their definition and statistics)
        case("Dropout", {"rate": 0.3}, nn.Dropout(0.3), (2, 3, 4, 5), mode="inference"),
        case("GlobalAvgPool", {}, nn.AdaptiveAvgPool2d(1), (2, 3, 5, 7)),
        case("GlobalAvgPool", {}, nn.AdaptiveAvgPool2d(1), (3, 2, 1, 4)),
        # convolutions: non-square inputs and kernels, stride 2, padding larger than the
        # kernel's half, and without a bias
        case("Conv2D", conv(3, 4, (3, 2), 2, 2, True), nn.Conv2d(3, 4, (3, 2), stride=2, padding=2), (2, 3, 7, 6)),
        case("Conv2D", conv(2, 3, (3, 3), 1, 1, False), nn.Conv2d(2, 3, 3, padding=1, bias=False), (2, 2, 5, 4)),
        case("Conv2D", conv(4, 2, (1, 1), 2, 0, False), nn.Conv2d(4, 2, 1, stride=2, bias=False), (3, 4, 5, 5)),
        # dilation 2, and stride and padding that differ between the axes
        case("Conv2D", conv(2, 3, (3, 3), 1, 2, True, (2, 2)), nn.Conv2d(2, 3, 3, padding=2, dilation=2), (2, 2, 6, 7)),
        case("Conv2D", conv(3, 2, (2, 3), (2, 1), (0, 3), True, (1, 2)),
             nn.Conv2d(3, 2, (2, 3), stride=(2, 1), padding=(0, 3), dilation=(1, 2)), (2, 3, 5, 4)),
        case("Conv2D", conv(2, 4, (3, 1), (1, 3), (1, 0), False, (3, 1)),
             nn.Conv2d(2, 4, (3, 1), stride=(1, 3), padding=(1, 0), dilation=(3, 1), bias=False), (3, 2, 8, 7)),
        # pooling: padding up to half the window (never winning a max, counted in a mean or
        # not), odd shapes, overlapping windows, inputs below zero where -inf padding matters
        case("MaxPool", pool((3, 3), 2, 1), nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
        case("MaxPool", pool((3, 2), 1, (1, 1)), nn.MaxPool2d((3, 2), stride=1, padding=(1, 1)), (2, 2, 5, 4),
             offset=-3.0),
        case("MaxPool", pool((2, 2), 2, 0), nn.MaxPool2d(2), (2, 3, 5, 7)),
        case("MeanPool", pool((3, 3), 2, 1, True), nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
        case("MeanPool", pool((2, 3), 1, (1, 1), False),
             nn.AvgPool2d((2, 3), stride=1, padding=(1, 1), count_include_pad=False), (2, 2, 5, 4)),
        case("MeanPool", pool((4, 2), 3, (2, 0), False),
             nn.AvgPool2d((4, 2), stride=3, padding=(2, 0), count_include_pad=False), (1, 2, 8, 7)),
        # groups: two groups, depthwise with a channel multiplier of 2, depthwise with stride 2 as
        # in MobileNet, and groups with dilation and per-axis stride
        case("Conv2D", conv(4, 6, (3, 3), 1, 1, True, groups=2), nn.Conv2d(4, 6, 3, padding=1, groups=2), (2, 4, 5, 6)),
        case("Conv2D", conv(3, 6, (3, 3), 1, 1, False, groups=3),
             nn.Conv2d(3, 6, 3, padding=1, groups=3, bias=False), (2, 3, 6, 5)),
        case("Conv2D", conv(4, 4, (3, 3), 2, 1, False, groups=4),
             nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False), (2, 4, 7, 8)),
        case("Conv2D", conv(6, 4, (2, 3), (2, 1), (0, 2), True, (2, 1), groups=2),
             nn.Conv2d(6, 4, (2, 3), stride=(2, 1), padding=(0, 2), dilation=(2, 1), groups=2), (1, 6, 7, 5)),
        # the training loss with label smoothing (and without, on large logits; and all smoothing)
        loss_case(0.1, (4, 5, 1, 1), [3, 0, 4, 1]),
        loss_case(0.0, (3, 10, 1, 1), [9, 2, 2], scale=30.0),
        loss_case(1.0, (2, 7, 1, 1), [6, 0]),
    ]
    document = {
        "generator": f"scripts/golden.py, PyTorch {torch.__version__}, float64, seed 20261130",
        "cases": cases,
    }
    if checking:
        check(document)
        return
    with open(out, "w") as f:
        json.dump(document, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases written to {out}")


if __name__ == "__main__":
    main()
