#!/usr/bin/python3
"""compare.py GOT.npy WANT.npy [ATOL [RTOL]]: exit 0 when the two arrays have
the same shape and |got - want| <= atol + rtol * |want| everywhere (default
1e-4 and 1e-4); prints the largest difference either way."""
import sys

import numpy as np

got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
atol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
rtol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
if got.shape != want.shape:
    print(f"shape {got.shape}, expected {want.shape}")
    sys.exit(1)
diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
bad = diff > atol + rtol * np.abs(want)
print(f"max abs diff {diff.max() if diff.size else 0:.3g}"
      + (f"; {int(bad.sum())} of {diff.size} values out of tolerance (atol {atol}, rtol {rtol})" if bad.any() else ""))
sys.exit(1 if bad.any() or not np.isfinite(got).all() else 0)
