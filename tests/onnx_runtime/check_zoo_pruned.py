#!/usr/bin/python3
"""check_zoo_pruned.py PRUNED.onnx SPARSITY: what l1filter did to an nnic export.

Counts the all-zero output filters of every Conv (and every Gemm/MatMul
weight, when any is pruned) and checks, independently of nnic's own
dependency analysis, that the filters meeting in an elementwise Add, Sub or
Mul (residual connections, squeeze-and-excitation gates) were pruned alike:
each operand is traced back through ops that keep channels one to one to the
layers that made them. Exit 1 when nothing was pruned, when far more than
SPARSITY was, or when a tied pair disagrees."""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

KEEP = {"BatchNormalization", "Relu", "Clip", "MaxPool", "AveragePool", "Dropout", "Sigmoid",
        "HardSigmoid", "HardSwish", "Tanh", "Erf", "Identity", "LayerNormalization", "Pad"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div"}

model = onnx.load(sys.argv[1])
target = float(sys.argv[2])
g = model.graph
weights = {t.name: numpy_helper.to_array(t) for t in g.initializer}
producer = {o: n for n in g.node for o in n.output}


def zero_rows(node):
    """The output channels of a weighted node that are all zero, or None."""
    if node.op_type == "Conv" and node.input[1] in weights:
        w = weights[node.input[1]]
        return np.all(w.reshape(w.shape[0], -1) == 0, axis=1)
    if node.op_type == "Gemm" and node.input[1] in weights:
        w = weights[node.input[1]]
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        w = w if trans_b else w.T
        return np.all(w == 0, axis=1)
    if node.op_type == "MatMul" and node.input[1] in weights:
        w = weights[node.input[1]]
        return np.all(w.reshape(-1, w.shape[-1]) == 0, axis=0) if w.ndim == 2 else None
    return None


def makers(value, seen):
    """The weighted nodes whose channels reach `value` one to one."""
    node = producer.get(value)
    if node is None or node.name in seen:
        return []
    seen.add(node.name)
    if zero_rows(node) is not None:
        return [node]
    if node.op_type in KEEP:
        return makers(node.input[0], seen)
    if node.op_type in ELEMENTWISE:
        return [m for i in node.input if i not in weights for m in makers(i, seen)]
    return []


layers = [(n, zero_rows(n)) for n in g.node if zero_rows(n) is not None]
convs = [(n, z) for n, z in layers if n.op_type == "Conv"]
pruned_linear = any(z.any() for n, z in layers if n.op_type != "Conv")
counted = layers if pruned_linear else convs
total = sum(z.size for _, z in counted)
pruned = sum(int(z.sum()) for _, z in counted)
if pruned == 0:
    print("no filter is zero")
    sys.exit(1)
if pruned > total * (target + 0.1):
    print(f"{pruned} of {total} filters zero: far more than {target}")
    sys.exit(1)
ties = 0
for node in g.node:
    if node.op_type not in ELEMENTWISE:
        continue
    sets = [makers(i, set()) for i in node.input if i not in weights]
    flat = [m for s in sets for m in s]
    for a in flat:
        for b in flat:
            za, zb = zero_rows(a), zero_rows(b)
            if a.name < b.name and za.size == zb.size and (za.any() or zb.any()):
                ties += 1
                if not np.array_equal(za, zb):
                    print(f"{a.name} and {b.name} meet in {node.op_type} '{node.name}' but lost different filters "
                          f"({int(za.sum())} and {int(zb.sum())})")
                    sys.exit(1)
kind = "filters and linear outputs" if pruned_linear else "Conv filters"
print(f"{pruned} of {total} {kind} zero ({pruned / total:.1%}); {ties} tied pairs pruned alike")
