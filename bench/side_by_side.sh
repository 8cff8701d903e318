#!/usr/bin/env bash
# nnic's training benchmark and PyTorch's (../shared/bench/torch_baseline.py),
# alternating in one sitting, with the ratios. Needs Debian's python3-torch;
# check first that torch uses OpenBLAS (ANCHORS.md):
#   update-alternatives --display libblas.so.3-x86_64-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
baseline=${TORCH_BASELINE:-../shared/bench/torch_baseline.py}
export OPENBLAS_NUM_THREADS=2 THREADS=2
export NNIC_PLUGIN_PATH=$PWD/${NNIC_BUILD:-build}/plugins
bash tools/build.sh >/dev/null
out=$(mktemp)
for r in $(seq "$rounds"); do
  "${NNIC_BUILD:-build}"/bench/bench_train --reps 30 2>/dev/null | sed 's/^/nnic /' >>"$out"
  /usr/bin/python3 "$baseline" sgemm train 2>/dev/null | sed 's/^/torch /' >>"$out"
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [(l.split(' ', 1)[0], json.loads(l.split(' ', 1)[1])) for l in open(sys.argv[1])]
def med(impl, what, key, **kv):
    v = [d[key] for i, d in rows if i == impl and d['what'] == what and all(d.get(k) == x for k, x in kv.items())]
    return statistics.median(v) if v else float('nan')
print("| measure | nnic | PyTorch | nnic / PyTorch |\n|---|---|---|---|")
a, b = med('nnic', 'sgemm_1024', 'gflops_median'), med('torch', 'sgemm_1024', 'gflops_median')
print(f"| sgemm 1024³ GFLOP/s | {a:.0f} | {b:.0f} | {a/b:.2f} |")
for batch in (64, 256):
    for stat in ('median', 'best'):
        a = med('nnic', 'train_step_nni_cnn', f'images_per_s_{stat}', batch=batch, wrapped=False)
        b = med('torch', 'train_step_nni_cnn', f'images_per_s_{stat}', batch=batch, wrapped=False)
        print(f"| nni_cnn train step, batch {batch}, images/s ({stat} step) | {a:.0f} | {b:.0f} | {a/b:.2f} |")
for batch in (64, 256):
    for impl in ('nnic', 'torch'):
        a = med(impl, 'train_step_nni_cnn', 'images_per_s_median', batch=batch, wrapped=False)
        b = med(impl, 'train_step_nni_cnn', 'images_per_s_median', batch=batch, wrapped=True)
        print(f"| {impl} step time, pruning wrappers vs none, batch {batch} | {100*(a/b-1):+.1f}% | | |")
for batch in (64, 256):
    f = med('nnic', 'train_step_nni_cnn', 'conv_linear_fraction_of_sgemm', batch=batch, wrapped=False)
    print(f"| conv+linear rate / sgemm rate, batch {batch} | {100*f:.0f}% | | |")
PY
rm -f "$out"
