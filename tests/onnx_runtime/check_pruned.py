#!/usr/bin/python3
"""check_pruned.py PRUNED.onnx NAME: the filters an nnic export lost.

Counts the all-zero output filters of every Conv weight in the file and
prints the share; for resnet18, also checks that the convolutions whose
outputs meet in a residual Add (NNI's channel dependency) lost exactly the
same filters. Exit 1 when nothing was pruned or a tied set disagrees."""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

# torchvision ResNet-18: the convolutions whose outputs are added together.
RESNET18_TIED = [
    ["conv1", "layer1.0.conv2", "layer1.1.conv2"],
    ["layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2"],
    ["layer3.0.conv2", "layer3.0.downsample.0", "layer3.1.conv2"],
    ["layer4.0.conv2", "layer4.0.downsample.0", "layer4.1.conv2"],
]

model = onnx.load(sys.argv[1])
name = sys.argv[2]
weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
zero_filters = {}
for node in model.graph.node:
    if node.op_type != "Conv":
        continue
    w = weights[node.input[1]]
    zero = np.all(w.reshape(w.shape[0], -1) == 0, axis=1)
    zero_filters[node.input[1][: -len(".weight")] if node.input[1].endswith(".weight") else node.input[1]] = zero

total = sum(z.size for z in zero_filters.values())
pruned = sum(int(z.sum()) for z in zero_filters.values())
if pruned == 0:
    print(f"no Conv filter is zero in {sys.argv[1]}")
    sys.exit(1)
if name == "resnet18":
    for group in RESNET18_TIED:
        first = zero_filters[group[0]]
        for other in group[1:]:
            if not np.array_equal(first, zero_filters[other]):
                print(f"{group[0]} and {other} meet in an Add but lost different filters")
                sys.exit(1)
        if not first.any():
            print(f"the tied set {group} lost no filter")
            sys.exit(1)
    print(f"{pruned} of {total} Conv filters zero, the {len(RESNET18_TIED)} residual sets pruned alike")
else:
    print(f"{pruned} of {total} Conv filters zero")
