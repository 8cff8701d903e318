#!/usr/bin/env bash
# nnic mask against NNI's own masks: every reference case
# (tests/fixtures/nni-masks) of every masker this build has, through the
# command line; the .npy masks written must equal NNI's, value for value and
# byte for byte (float32 0/1). Then the command's errors. Needs Debian's
# python3-numpy (skipped without it).
set -u
nnic=$1
fixtures=${NNIC_SOURCE_DIR:-$(dirname "$0")/..}/tests/fixtures/nni-masks
py=/usr/bin/python3
if ! [ -x "$py" ] || ! "$py" -c 'import numpy' 2>/dev/null; then
  echo "SKIP: no /usr/bin/python3 with numpy"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

"$py" - "$nnic" "$fixtures" "$tmp" <<'PY' || fails=$((fails+1))
import json, os, re, subprocess, sys
import numpy as np

nnic, fixtures, tmp = sys.argv[1:4]
out = subprocess.run([nnic, "plugins"], capture_output=True, text=True, check=True).stdout
maskers = set(re.findall(r"^(\S+)\s+masker\s", out, re.M))
required = {"level", "l1filter", "l2filter", "fpgm", "slim"}  # this tree builds them
missing = required - maskers
if missing:
    print(f"FAIL nnic plugins lacks {sorted(missing)}")
    sys.exit(1)
nnic_name = {"l1": "l1filter", "l2": "l2filter"}
manifest = json.load(open(os.path.join(fixtures, "manifest.json")))
fails = ran = 0

def same(path, ref_path, what):
    got, want = np.load(path), np.load(ref_path)
    problems = []
    if got.dtype != np.float32:
        problems.append(f"dtype {got.dtype}")
    if got.shape != want.shape:
        problems.append(f"shape {got.shape} != {want.shape}")
    elif not np.array_equal(got, want):
        problems.append(f"{int((got != want).sum())} values differ")
    elif got.tobytes() != want.astype(np.float32).tobytes():
        problems.append("bytes differ")
    return [f"{what}: {p}" for p in problems]

for case in manifest["cases"]:
    cid, alg = case["id"], nnic_name.get(case["algorithm"], case["algorithm"])
    if alg not in maskers:
        print(f"SKIP {cid}: no '{alg}' plugin in this build")
        continue
    cfg = case["config_list"]
    assert len(cfg) == 1, cid
    cmd = [nnic, "mask", "--algorithm", alg, "--sparsity", repr(cfg[0]["sparsity"])]
    layers = case["layers"]
    for i, layer in enumerate(layers):
        cmd += ["--weight", os.path.join(fixtures, layer["weight"]),
                "--out", os.path.join(tmp, f"{cid}_{i}_w.npy"),
                "--bias-out", os.path.join(tmp, f"{cid}_{i}_b.npy")]
        if layer.get("bias"):
            cmd += ["--bias", os.path.join(fixtures, layer["bias"])]
        if layer.get("grad"):
            cmd += ["--grad", os.path.join(fixtures, layer["grad"]),
                    "--steps", str(case.get("optimizer_steps", 2))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    ran += 1
    if r.returncode != 0:
        print(f"FAIL {cid}: exit {r.returncode}\n{r.stderr}")
        fails += 1
        continue
    problems = []
    for i, layer in enumerate(layers):
        problems += same(os.path.join(tmp, f"{cid}_{i}_w.npy"), os.path.join(fixtures, layer["weight_mask"]),
                         f"layer {layer['name']} weight_mask")
        if layer.get("bias_mask"):
            problems += same(os.path.join(tmp, f"{cid}_{i}_b.npy"), os.path.join(fixtures, layer["bias_mask"]),
                             f"layer {layer['name']} bias_mask")
        # slim: a layer left with no channel is named in a warning
        if alg == "slim":
            dead = not np.load(os.path.join(fixtures, layer["weight_mask"])).any()
            warned = f"slim: {layer['name']} loses all" in r.stderr
            if dead != warned:
                problems.append(f"layer {layer['name']}: dead {dead} but warned {warned}")
    if problems:
        print(f"FAIL {cid} ({alg}): " + "; ".join(problems))
        fails += 1
    else:
        print(f"ok   {cid} ({alg})")

algs = {nnic_name.get(c["algorithm"], c["algorithm"]) for c in manifest["cases"]}
print(f"{ran} cases of {sorted(algs & maskers)} run")
# Bad inputs for the error checks below.
np.save(os.path.join(tmp, "int.npy"), np.zeros((3, 4), np.int32))
np.save(os.path.join(tmp, "w3d.npy"), np.zeros((3, 4, 5), np.float32))
sys.exit(1 if fails else 0)
PY

refuse() { # refuse NAME NEEDLE COMMAND... : must fail with NEEDLE on stderr
  local name=$1 needle=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then echo "FAIL $name (succeeded)"; fails=$((fails+1));
  elif grep -qF -- "$needle" "$tmp/err"; then echo "ok   $name";
  else echo "FAIL $name: stderr lacks '$needle'"; cat "$tmp/err"; fails=$((fails+1)); fi
}
conv=$fixtures/09_l1_7_13_3_sp0.5_randn_L0_weight.npy
linear=$fixtures/00_level_33_65_sp0.1_randn_L0_weight.npy
bn=$fixtures/18_slim_20_50_bn_sp0.5_randn_L0_weight.npy
refuse unknown-algorithm "did you mean 'l1filter'" "$nnic" mask -a l1fliter -s 0.5 --weight "$conv" --out "$tmp/m.npy"
refuse not-a-masker "agp is a pruner, not a masker" "$nnic" mask -a agp -s 0.5 --weight "$conv" --out "$tmp/m.npy"
refuse no-sparsity "--sparsity is required" "$nnic" mask -a level --weight "$conv" --out "$tmp/m.npy"
refuse bad-sparsity "--sparsity: must be in (0, 1), got 1.5" "$nnic" mask -a level -s 1.5 --weight "$conv" --out "$tmp/m.npy"
refuse no-out "--out is required" "$nnic" mask -a level -s 0.5 --weight "$conv"
refuse missing-file "nope.npy" "$nnic" mask -a level -s 0.5 --weight "$tmp/nope.npy" --out "$tmp/m.npy"
refuse wrong-dtype "int.npy: must hold float32 (or float64), got int32" "$nnic" mask -a level -s 0.5 --weight "$tmp/int.npy" --out "$tmp/m.npy"
refuse wrong-ndim "w3d.npy: a weight must be 4-D" "$nnic" mask -a level -s 0.5 --weight "$tmp/w3d.npy" --out "$tmp/m.npy"
refuse wrong-bias "must have shape [65], got [13]" "$nnic" mask -a level -s 0.5 --weight "$linear" \
  --bias "$fixtures/09_l1_7_13_3_sp0.5_randn_L0_bias.npy" --out "$tmp/m.npy"
refuse wrong-grad "differs from the weight's [65, 33]" "$nnic" mask -a level -s 0.5 --weight "$linear" \
  --grad "$fixtures/20_taylorfo_7_13_3_sp0.5_randn_L0_grad.npy" --out "$tmp/m.npy"
refuse filter-on-linear "layer '0' is a Linear: l1filter prunes Conv2d filters only" "$nnic" mask -a l1filter -s 0.5 \
  --weight "$linear" --out "$tmp/m.npy"
refuse slim-on-conv "layer '0' is a Conv2d: slim prunes BatchNorm2d layers only" "$nnic" mask -a slim -s 0.5 \
  --weight "$conv" --out "$tmp/m.npy"
refuse several-not-bn "several layers must all be BatchNorm2d" "$nnic" mask -a slim -s 0.5 --weight "$bn" \
  --weight "$conv" --out "$tmp/a.npy" --out "$tmp/b.npy"
refuse bias-out-without-bias "has no bias (give --bias)" "$nnic" mask -a level -s 0.5 --weight "$linear" \
  --out "$tmp/m.npy" --bias-out "$tmp/b.npy"
[ "$fails" -eq 0 ] && echo "all ok" || echo "$fails failed"
[ "$fails" -eq 0 ]
