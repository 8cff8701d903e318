#!/usr/bin/python3
"""compare.py GOT.npy WANT.npy [ATOL [RTOL [PEAK]]]: exit 0 when the two
arrays have the same shape and |got - want| <= atol + rtol * |want| +
peak * max|want| everywhere (defaults 1e-4, 1e-4 and 0; PEAK is a tolerance
relative to the output's peak, for comparing whole networks); prints the
largest difference either way."""
import sys

import numpy as np

got, want = np.load(sys.argv[1]), np.load(sys.argv[2])
atol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-4
rtol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
peak = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
if got.shape != want.shape:
    print(f"shape {got.shape}, expected {want.shape}")
    sys.exit(1)
diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
top = float(np.abs(want).max()) if want.size else 0.0
bad = diff > atol + rtol * np.abs(want) + peak * top
rel = f", {diff.max() / top:.3g} of the peak {top:.3g}" if peak and top > 0 and diff.size else ""
print(f"max abs diff {diff.max() if diff.size else 0:.3g}{rel}"
      + (f"; {int(bad.sum())} of {diff.size} values out of tolerance (atol {atol}, rtol {rtol}, peak {peak})"
         if bad.any() else ""))
sys.exit(1 if bad.any() or not np.isfinite(got).all() else 0)
