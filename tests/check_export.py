#!/usr/bin/python3
"""Checks an `nnic compress` output directory, independently of nnic:
the exported weights hold exactly the zeros report.json claims, pruned
positions (mask 0) are zero in the weights, and masks are float32 0/1.

  check_export.py DIR        (exit 77 = skipped: no numpy)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not installed (apt-get install python3-numpy)")
    sys.exit(77)
from safetensors_roundtrip import read_safetensors  # noqa: E402


def main(out):
    weights = {n: a for n, _, a, _ in read_safetensors(os.path.join(out, "model.safetensors"), np)[0]}
    masks = {n: (d, a) for n, d, a, _ in read_safetensors(os.path.join(out, "masks.safetensors"), np)[0]}
    report = json.load(open(os.path.join(out, "report.json")))
    for key in ("accuracy_before", "accuracy_pruned", "accuracy_after"):
        assert 0.0 <= report[key] <= 1.0, "%s = %r is not a fraction" % (key, report[key])
    for layer in report["layers"]:
        name = layer["name"]
        w = weights[name + ".weight"]
        zeros = int((w == 0).sum())
        assert zeros == layer["zeros"], "%s: %d zeros in the weights, the report says %d" % (name, zeros, layer["zeros"])
        assert w.size == layer["weights"], "%s: %d weights, the report says %d" % (name, w.size, layer["weights"])
        assert abs(layer["sparsity"] - zeros / w.size) < 1e-12, "%s: sparsity disagrees" % name
        dtype, mask = masks[name + ".weight_mask"]
        assert dtype == "F32" and mask.shape == w.shape, "%s: mask is %s %s" % (name, dtype, mask.shape)
        assert set(np.unique(mask)) <= {0.0, 1.0}, "%s: mask values other than 0/1" % name
        assert not (w[mask == 0] != 0).any(), "%s: a pruned weight is not zero" % name
        print("ok   %s: %d of %d weights zero, as reported" % (name, zeros, w.size))


if __name__ == "__main__":
    main(sys.argv[1])
