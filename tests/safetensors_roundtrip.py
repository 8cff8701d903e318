#!/usr/bin/env python3
"""Checks that nnic's safetensors files agree with an independent implementation.

Usage: safetensors_roundtrip.py [NNIC_CLI]     check the fixtures (the CLI is not used)
       safetensors_roundtrip.py --generate     rewrite the Python-written fixtures

The reader and writer below follow the format's specification with numpy
alone (Python's `safetensors` package is used as well when it is installed):

* fixtures/nnic_written.safetensors was written by nnic (test_io.c checks
  that nnic still writes it byte for byte); here it must read back with the
  expected values and the reference layout.
* fixtures/python_written.safetensors is what this writer produces, in the
  layout of the reference implementation (metadata first, tensors sorted by
  dtype then name, header padded with spaces); test_io.c reads it with nnic,
  and here it must still be exactly what the writer produces.
* fixtures/numpy_*.npy are numpy.save's output; test_io.c reads them and
  checks that nnic writes the same bytes; here they must still be what
  numpy.save writes.

Exit status: 0 passed, 1 failed, 77 skipped (numpy missing).
"""
import json
import os
import struct
import sys

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# The reference implementation's dtype order (Rust `Dtype` declaration
# order); save_file sorts tensors by it, descending, then by name.
DTYPE_RANK = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
              "I64", "U64"]
NUMPY_OF = {"BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
            "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8"}


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)), "duplicate keys in the header: %r" % keys)
    return dict(pairs)


def read_safetensors(path, np):
    """Returns (tensors in header order, metadata, raw header bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    check(len(data) >= 8, "%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", data[:8])
    check(n <= len(data) - 8, "%s: header length %d beyond the file" % (path, n))
    header = data[8:8 + n]
    pairs = json.loads(header.decode("utf-8"), object_pairs_hook=lambda p: p)
    body = data[8 + n:]
    metadata = {}
    tensors = []
    for name, info in pairs:
        if name == "__metadata__":
            metadata = no_duplicates(info)
            continue
        info = no_duplicates(info)
        begin, end = info["data_offsets"]
        dtype = np.dtype(NUMPY_OF[info["dtype"]])
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        check(0 <= begin <= end <= len(body), "%s: %s: offsets outside the data" % (path, name))
        check(count * dtype.itemsize == end - begin, "%s: %s: size mismatch" % (path, name))
        array = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape)
        tensors.append((name, info["dtype"], array, (begin, end)))
    return tensors, metadata, header, len(body)


def write_safetensors(tensors, metadata, np):
    """Bytes of a file holding tensors {name: (dtype name, array)}."""
    order = sorted(tensors, key=lambda k: (-DTYPE_RANK.index(tensors[k][0]), k))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    chunks = []
    offset = 0
    for name in order:
        dtype, array = tensors[name]
        raw = np.ascontiguousarray(array, dtype=np.dtype(NUMPY_OF[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def python_fixture(np):
    tensors = {
        "a.weight": ("F32", np.array([[1, 2], [3, 4]], dtype=np.float32)),
        "b.bias": ("F32", np.array([1.5, -2.5, 0], dtype=np.float32)),
        "counts": ("I64", np.array([1, -2, 3000000000], dtype=np.int64)),
        "half": ("F16", np.array([1.0, -0.5], dtype=np.float16)),
        "flags": ("U8", np.array([0, 1, 255], dtype=np.uint8)),
    }
    return write_safetensors(tensors, {"format": "np"}, np)


def check_layout(path, tensors, header, body_len):
    """The reference layout: padded header, contiguous offsets in header order."""
    check(len(header) % 8 == 0, "%s: header length not a multiple of 8" % path)
    text = header.rstrip(b" ")
    check(text.endswith(b"}"), "%s: header padding is not spaces" % path)
    offset = 0
    for name, _, _, (begin, end) in tensors:
        check(begin == offset, "%s: %s does not follow the previous tensor" % (path, name))
        offset = end
    check(offset == body_len, "%s: data section has trailing bytes" % path)


def check_nnic_written(np):
    path = os.path.join(FIXTURES, "nnic_written.safetensors")
    tensors, metadata, header, body_len = read_safetensors(path, np)
    check_layout(path, tensors, header, body_len)
    check(header.startswith(b'{"__metadata__":'), "%s: metadata is not first" % path)
    check(metadata == {"format": "pt", "producer": "nnic-test"}, "%s: metadata %r" % (path, metadata))
    expected = [
        ("layer.weight", "F32", np.array([[0.5, -1, 2], [3.25, -4.5, 100]], dtype=np.float32)),
        ("layer.steps", "I64", np.array([7, -9000000000], dtype=np.int64)),
        ("scale", "F32", np.array(0.125, dtype=np.float32)),
    ]
    check([t[0] for t in tensors] == [e[0] for e in expected],
          "%s: tensors %r" % (path, [t[0] for t in tensors]))
    for (name, dtype, array, _), (_, want_dtype, want) in zip(tensors, expected):
        check(dtype == want_dtype, "%s: %s is %s" % (path, name, dtype))
        check(array.shape == want.shape, "%s: %s has shape %r" % (path, name, array.shape))
        check(np.array_equal(array, want), "%s: %s = %r" % (path, name, array))
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("safetensors package not installed: checked with the numpy reader only")
        return
    loaded = load_file(path)
    for name, _, want in expected:
        check(np.array_equal(loaded[name], want), "safetensors.numpy: %s differs" % name)


def check_python_written(np):
    path = os.path.join(FIXTURES, "python_written.safetensors")
    with open(path, "rb") as f:
        on_disk = f.read()
    check(on_disk == python_fixture(np),
          "%s is not what the writer produces (run with --generate and review)" % path)
    tensors, metadata, header, body_len = read_safetensors(path, np)
    check_layout(path, tensors, header, body_len)
    check(metadata == {"format": "np"}, "%s: metadata %r" % (path, metadata))
    # What test_io.c expects: by dtype (I64, F32, F16, U8), then by name.
    names = [t[0] for t in tensors]
    check(names == ["counts", "a.weight", "b.bias", "half", "flags"], "%s: order %r" % (path, names))


def numpy_fixtures(np):
    """The .npy fixtures: numpy.save's own output, which nnic must read, and
    (for the dtypes nnic writes) reproduce byte for byte (test_io.c)."""
    return {
        "numpy_f4.npy": np.array([[1, -2, 3.5], [0, 1e30, -1e-30]], dtype=np.float32),
        "numpy_i8.npy": np.array([0, -1, 1 << 40, 9], dtype=np.int64),
        "numpy_0d.npy": np.array(42.0, dtype=np.float32),
        "numpy_u1.npy": np.array([0, 128, 255], dtype=np.uint8),
        "numpy_f8.npy": np.array([0.25, -8.0, 1e300], dtype=np.float64),
        "numpy_b1.npy": np.array([[True, False], [False, True]]),
    }


def npy_bytes(np, array):
    import io
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def check_numpy_fixtures(np):
    for name, array in numpy_fixtures(np).items():
        path = os.path.join(FIXTURES, name)
        with open(path, "rb") as f:
            on_disk = f.read()
        check(on_disk == npy_bytes(np, array),
              "%s is not what numpy.save writes (run with --generate and review)" % path)
        loaded = np.load(path)
        check(loaded.dtype == array.dtype and np.array_equal(loaded, array), "%s: values" % path)


def generate(np):
    path = os.path.join(FIXTURES, "python_written.safetensors")
    with open(path, "wb") as f:
        f.write(python_fixture(np))
    print("wrote", path)
    for name, array in numpy_fixtures(np).items():
        path = os.path.join(FIXTURES, name)
        with open(path, "wb") as f:
            f.write(npy_bytes(np, array))
        print("wrote", path)


def main(argv):
    try:
        import numpy as np
    except ImportError:
        print("SKIP: numpy is not importable (apt-get install python3-numpy)")
        return 77
    if len(argv) > 1 and argv[1] == "--generate":
        generate(np)
        return 0
    checks = [check_nnic_written, check_python_written, check_numpy_fixtures]
    failed = 0
    for fn in checks:
        try:
            fn(np)
            print("ok", fn.__name__)
        except (Failure, OSError, ValueError, KeyError, TypeError) as e:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, e))
    print("safetensors_python: %d of %d checks passed" % (len(checks) - failed, len(checks)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
