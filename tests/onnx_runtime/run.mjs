// Runs an ONNX model with ONNX Runtime (npm onnxruntime-node, CPU) on one
// float32 input and writes the first output as a float32 .npy.
//
//   node run.mjs MODEL.onnx INPUT.npy|INPUT.pb OUTPUT.npy
//   node run.mjs --pb-to-npy TENSOR.pb OUT.npy
//
// INPUT is a .npy file or, for the ONNX backend-test layout, a serialized
// float TensorProto (.pb). The readers and the writer are here (no npm
// package for them): .npy version 1.0/2.0/3.0, little-endian <f4 or <f8
// (converted to float32), C order; TensorProto FLOAT or DOUBLE, raw_data or
// the typed fields. Exit status 0 on success, 1 with a message on stderr.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function fail (msg) {
  process.stderr.write(`run.mjs: ${msg}\n`);
  process.exit(1);
}

export function readNpy (path) {
  const buf = readFileSync(path);
  const magic = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
  if (buf.length < 10 || !buf.subarray(0, 6).equals(magic)) fail(`${path}: not a .npy file`);
  const major = buf[6];
  let headerLen, offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) fail(`${path}: truncated header`);
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    fail(`${path}: .npy version ${major} not supported`);
  }
  if (offset + headerLen > buf.length) fail(`${path}: truncated header`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', offset, offset + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) fail(`${path}: malformed header ${JSON.stringify(header)}`);
  if (fortran[1] === 'True') fail(`${path}: Fortran order not supported`);
  const shape = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isInteger(n) || n < 0) fail(`${path}: bad shape ${shapeM[1]}`);
    return n;
  });
  const numel = shape.reduce((a, b) => a * b, 1);
  const dataOff = offset + headerLen;
  let data;
  if (descr[1] === '<f4') {
    if (dataOff + numel * 4 > buf.length) fail(`${path}: ${numel} float32 values do not fit in the file`);
    data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) data[i] = buf.readFloatLE(dataOff + 4 * i);
  } else if (descr[1] === '<f8') {
    if (dataOff + numel * 8 > buf.length) fail(`${path}: ${numel} float64 values do not fit in the file`);
    data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) data[i] = buf.readDoubleLE(dataOff + 8 * i);
  } else {
    fail(`${path}: dtype ${descr[1]} not supported (float32 or float64)`);
  }
  return { shape, data };
}

// A minimal protobuf reader for onnx.TensorProto: dims = 1, data_type = 2,
// float_data = 4, name = 8, raw_data = 9, double_data = 10.
export function readTensorProto (path) {
  const buf = readFileSync(path);
  let pos = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      if (pos >= buf.length) fail(`${path}: truncated varint`);
      const b = buf[pos++];
      v += (b & 0x7f) * mul;
      if (!(b & 0x80)) return v;
      mul *= 128;
    }
  };
  const dims = [];
  const floats = [];
  let dataType = 0;
  let raw = null;
  while (pos < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const v = varint();
      if (field === 1) dims.push(v);
      else if (field === 2) dataType = v;
    } else if (wire === 1) {
      if (field === 10) floats.push(buf.readDoubleLE(pos));
      pos += 8;
    } else if (wire === 5) {
      if (field === 4) floats.push(buf.readFloatLE(pos));
      pos += 4;
    } else if (wire === 2) {
      const len = varint();
      const end = pos + len;
      if (end > buf.length) fail(`${path}: truncated field ${field}`);
      if (field === 1) while (pos < end) dims.push(varint());
      else if (field === 4) for (; pos < end; pos += 4) floats.push(buf.readFloatLE(pos));
      else if (field === 10) for (; pos < end; pos += 8) floats.push(buf.readDoubleLE(pos));
      else if (field === 9) raw = buf.subarray(pos, end);
      pos = end;
    } else {
      fail(`${path}: protobuf wire type ${wire} not expected in a TensorProto`);
    }
  }
  if (dataType !== 1 && dataType !== 11) fail(`${path}: TensorProto data_type ${dataType}, not FLOAT (1) or DOUBLE (11)`);
  const numel = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(numel);
  if (raw) {
    const size = dataType === 1 ? 4 : 8;
    if (raw.length !== numel * size) fail(`${path}: raw_data of ${raw.length} bytes for ${numel} values`);
    for (let i = 0; i < numel; i++) data[i] = size === 4 ? raw.readFloatLE(4 * i) : raw.readDoubleLE(8 * i);
  } else {
    if (floats.length !== numel) fail(`${path}: ${floats.length} values for shape [${dims.join(', ')}]`);
    data.set(floats);
  }
  return { shape: dims, data };
}

export function writeNpy (path, shape, data) {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = Buffer.alloc(10 + header.length + data.length * 4);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(out, 0);
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  const off = 10 + header.length;
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], off + 4 * i);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, out);
  renameSync(tmp, path);
}

async function main () {
  const args = process.argv.slice(2);
  if (args.length === 3 && args[0] === '--pb-to-npy') {
    const t = readTensorProto(args[1]);
    writeNpy(args[2], t.shape, t.data);
    return;
  }
  if (args.length !== 3) fail('usage: node run.mjs MODEL.onnx INPUT.npy|INPUT.pb OUTPUT.npy');
  const [modelPath, inputPath, outputPath] = args;
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    fail(`cannot load onnxruntime-node (NODE_PATH=${process.env.NODE_PATH || ''}): ${e.message}`);
  }
  const input = inputPath.endsWith('.pb') ? readTensorProto(inputPath) : readNpy(inputPath);
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  });
  if (session.inputNames.length !== 1) {
    fail(`${modelPath}: ${session.inputNames.length} graph inputs (${session.inputNames.join(', ')}); one expected`);
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input.data, input.shape) };
  const t0 = process.hrtime.bigint();
  const results = await session.run(feeds);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const out = results[session.outputNames[0]];
  if (out.type !== 'float32') fail(`${modelPath}: output ${session.outputNames[0]} is ${out.type}, not float32`);
  writeNpy(outputPath, out.dims.map(Number), out.data);
  process.stdout.write(`onnxruntime-node ${ort.env.versions.node}: ${modelPath} ` +
    `[${input.shape.join(', ')}] -> [${out.dims.join(', ')}] in ${ms.toFixed(1)} ms\n`);
}

main().catch((e) => fail(e.message));
