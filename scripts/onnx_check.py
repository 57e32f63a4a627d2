#!/usr/bin/python3
"""ONNX's own checks of the files save_onnx writes, with Debian's python3-onnx.

For every .onnx file in DIRECTORY: onnx.checker.check_model(full_check=True) (the graph, the
operators of its opset, and strict shape inference), then shape inference again to read the
output's inferred shape, which must be the shape the file declares (batch x classes, the
batch dimension symbolic). The ctest onnx_exports_pass_onnx_checker runs it on the files
tests/tools/export_onnx.cpp writes.

    /usr/bin/python3 scripts/onnx_check.py DIRECTORY
"""
import os
import sys

import onnx
import onnx.shape_inference


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    shapes = {v.name: dims(v) for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for node in model.graph.node:
        for out in node.output:
            if out not in shapes or any(d == 0 for d in shapes[out]):
                raise ValueError(f"node {node.name} ({node.op_type}): no inferred shape for {out}")
    declared = dims(model.graph.output[0])
    if declared[0] != "batch" or shapes[model.graph.output[0].name] != declared:
        raise ValueError(f"output declared {declared}, inferred {shapes[model.graph.output[0].name]}")
    return len(model.graph.node), declared


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    files = sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".onnx"))
    if not files:
        print(f"onnx_check: no .onnx files in {sys.argv[1]}", file=sys.stderr)
        return 1
    failed = 0
    for name in files:
        try:
            nodes, output = check(os.path.join(sys.argv[1], name))
            print(f"{name}: passes onnx.checker (full_check) and shape inference; {nodes} nodes, output {output}")
        except Exception as e:  # noqa: BLE001 (every failure of the checker is reported)
            print(f"{name}: FAILS: {e}")
            failed += 1
    print(f"onnx_check: {len(files) - failed} of {len(files)} files pass (onnx {onnx.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
