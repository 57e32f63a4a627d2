#!/usr/bin/python3
"""ONNX files written by PyTorch, and PyTorch's outputs for them: the fixtures of load_onnx.

Builds the PyTorch twins of examples/networks.hpp's LeNet-5, wide network, small ResNet and
small MobileNet (bench/compare_pytorch.py's make_torch_net) with fixed random weights (the
batch normalisations get random scales, shifts and running statistics, so that a folded
export differs from a kept one), exports them with torch.onnx.export in eval mode, and
records what PyTorch computes for three fixed images. The tests (tests/test_onnx.cpp) load
each file into the C++ network of the same structure and match these outputs: to 1e-5 for
float files, to 1e-12 for the float64 ones. They read the committed files; they do not need
PyTorch.

One more file is a trained model: lenet_trained.onnx, PyTorch's LeNet-5 after two epochs on
Fashion-MNIST (inputs scaled to [0, 1], as torchvision's ToTensor does), with PyTorch's test
accuracy on the first 2,000 test images in lenet_trained.json. The test
examples_predict_pytorch_onnx runs mnist_predict on it, which must print that accuracy.
Training depends on the BLAS's rounding, so --check leaves this file out.

The files cover what PyTorch writes: its default opset (14) and opset 13; batch
normalisation folded into the convolution (eval mode, the default) and kept as
BatchNormalization nodes (TrainingMode.PRESERVE); Flatten, and x.view(x.size(0), -1), which
becomes Shape, Gather, Unsqueeze, Concat and Reshape; grouped (depthwise) convolutions; float
and float64; and a network of every layer and option the reader knows (EveryLayer: per-axis
stride, padding and dilation, groups, padded max and mean pools, LeakyReLU, ELU, Tanh,
Sigmoid, both GELUs, Softmax, residual addition, concatenation, a three-way sum, batch
normalisation of dense features, a convolution after a dense layer).

    /usr/bin/python3 scripts/onnx_fixtures.py [DIRECTORY]   (default: tests/data/onnx)
    /usr/bin/python3 scripts/onnx_fixtures.py --check       regenerate into a temporary
                                                            directory and compare byte for byte
"""
import filecmp
import io
import json
import os
import sys
import tempfile

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare_pytorch import make_torch_net  # noqa: E402

SEED = 20261201


class FlattenByView(nn.Module):
    """LeNet-5 with x.view(x.size(0), -1) in place of nn.Flatten, as many tutorials write it."""

    def __init__(self):
        super().__init__()
        lenet = make_torch_net("lenet")
        self.features = lenet[:6]
        self.classifier = lenet[7:]

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class EveryLayer(nn.Module):
    """The PyTorch twin of tests/onnx_nets.hpp's every_layer_net: every layer and option that
    load_onnx reads, on 3 x 11 x 9 inputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(1, 2))
        self.bn1 = nn.BatchNorm2d(8, momentum=0.2, eps=1e-3)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False, groups=4)
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.res_conv = nn.Conv2d(8, 8, 3, padding=1)
        self.branch_conv = nn.Conv2d(8, 4, 1)
        self.branch_pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.pool2 = nn.AvgPool2d(3, stride=2, padding=1)  # exported as Pad, then AveragePool
        self.pool3 = nn.AvgPool2d(1)  # exported as a Pad of zeros, then AveragePool
        self.dropout = nn.Dropout(0.3)
        self.dense1 = nn.Linear(72, 16)
        self.bn2 = nn.BatchNorm1d(16)
        self.conv3 = nn.Conv2d(16, 16, 1)
        self.dense2 = nn.Linear(16, 5)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        x = self.pool1(nn.functional.elu(self.conv2(x), 0.5))
        x = x + torch.tanh(self.res_conv(x))
        x = torch.cat([torch.sigmoid(self.branch_conv(x)),
                       nn.functional.gelu(self.branch_pool(x), approximate="tanh")], 1)
        x = nn.functional.gelu(x) + x + torch.relu(x)
        x = self.dropout(self.pool3(self.pool2(x))).flatten(1)
        x = self.bn2(self.dense1(x))
        x = self.conv3(x.reshape(x.shape[0], 16, 1, 1))
        y = x.flatten(1)
        x = y.reshape(y.shape[0], 16, 1, 1) + x
        return torch.softmax(self.dense2(x.flatten(1)), 1)


def make(net_name):
    """A network with fixed random weights and batch-normalisation statistics, in eval mode."""
    modules = {"lenet-view": FlattenByView, "every-layer": EveryLayer}
    net = modules[net_name]() if net_name in modules else make_torch_net(net_name)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.weight.copy_(torch.rand(module.num_features) + 0.5)
                module.bias.copy_(torch.randn(module.num_features) * 0.1)
                module.running_mean.copy_(torch.randn(module.num_features) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features) + 0.5)
    return net.eval()


# (file, network as examples/networks.hpp names it, how the PyTorch module is built,
#  opset or None for PyTorch's default, batch normalisation kept, float64)
CASES = [
    ("lenet.onnx", "lenet", "lenet", None, False, False),
    ("lenet_view.onnx", "lenet", "lenet-view", 13, False, False),
    ("wide.onnx", "wide", "wide", 13, False, False),
    ("resnet.onnx", "resnet", "resnet", None, False, False),
    ("resnet_bn.onnx", "resnet", "resnet", 13, True, False),
    ("mobilenet.onnx", "mobilenet", "mobilenet", None, False, False),
    ("lenet_f64.onnx", "lenet", "lenet", None, False, True),
    ("resnet_f64.onnx", "resnet", "resnet", None, True, True),
    ("every_layer.onnx", "every-layer", "every-layer", 13, False, False),
    ("every_layer_f64.onnx", "every-layer", "every-layer", None, False, True),
]


def export(net, example, opset, keep_batch_norm):
    buffer = io.BytesIO()
    options = {"opset_version": opset} if opset else {}
    training = torch.onnx.TrainingMode.PRESERVE if keep_batch_norm else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(net, example, buffer, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, training=training, **options)
    return buffer.getvalue()


DATA = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(split):
    import gzip
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(f"{DATA}/{prefix}-images-idx3-ubyte.gz") as f:
        images = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8).reshape(-1, 1, 28, 28)
    with gzip.open(f"{DATA}/{prefix}-labels-idx1-ubyte.gz") as f:
        labels = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    return images.float() / 255, labels


def trained_lenet(directory):
    """LeNet-5 trained by PyTorch for two epochs; its ONNX file and its test accuracy."""
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    images, labels = fashion_mnist("train")
    net = make_torch_net("lenet")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss_fn(net(images[batch]), labels[batch]).backward()
            optimizer.step()
    net.eval()
    test_images, test_labels = fashion_mnist("test")
    test_images, test_labels = test_images[:2000], test_labels[:2000]
    with torch.no_grad():
        predicted = net(test_images).argmax(1)
    accuracy = (predicted == test_labels).float().mean().item()
    with open(os.path.join(directory, "lenet_trained.onnx"), "wb") as f:
        f.write(export(net, test_images[:1], None, False))
    with open(os.path.join(directory, "lenet_trained.json"), "w") as f:
        json.dump({"about": "PyTorch's LeNet-5 after two epochs on Fashion-MNIST (scripts/onnx_fixtures.py)",
                   "test_images": 2000, "test_accuracy": round(accuracy, 4)}, f, indent=1)
        f.write("\n")


def generate(directory, trained=True):
    os.makedirs(directory, exist_ok=True)
    torch.manual_seed(SEED)
    images = torch.rand(3, 1, 28, 28)
    every_layer_images = torch.randn(2, 3, 11, 9)
    record = {"about": "PyTorch " + torch.__version__.split("+")[0] + "'s outputs for the ONNX files beside this; "
                       "written by scripts/onnx_fixtures.py",
              "input_shape": list(images.shape), "input": [float(v) for v in images.flatten()], "cases": []}
    for file, network, module, opset, keep_batch_norm, float64 in CASES:
        torch.manual_seed(SEED + len(record["cases"]))
        net = make(module)
        x = images if network != "every-layer" else every_layer_images
        if float64:
            net = net.double()
            x = x.double()
        with torch.no_grad():
            output = net(x)
        with open(os.path.join(directory, file), "wb") as f:
            f.write(export(net, x[:1], opset, keep_batch_norm))
        case = {"input_shape": list(x.shape), "input": [float(v) for v in x.flatten()]} if network == "every-layer" else {}
        record["cases"].append({**case, "file": file, "network": network, "float64": float64,
                                "batch_norm": "kept" if keep_batch_norm else "folded",
                                "output_shape": list(output.shape), "output": [float(v) for v in output.flatten()]})
    with open(os.path.join(directory, "pytorch_outputs.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    if trained:
        trained_lenet(directory)


def main():
    if sys.argv[1:] == ["--check"]:
        committed = os.path.join(ROOT, "tests", "data", "onnx")
        with tempfile.TemporaryDirectory() as fresh:
            generate(fresh, trained=False)
            names = sorted(os.listdir(fresh))
            _, differ, missing = filecmp.cmpfiles(committed, fresh, names, shallow=False)
            if differ or missing:
                print(f"onnx_fixtures: differ from what PyTorch writes now: {differ + missing}")
                return 1
        print(f"onnx_fixtures: the {len(names)} committed files are what PyTorch {torch.__version__} writes")
        return 0
    generate(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "onnx"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
