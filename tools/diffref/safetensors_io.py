#!/usr/bin/python3
"""Minimal safetensors reader/writer in numpy (our own; no safetensors
package needed).

File layout (https://github.com/huggingface/safetensors, "Format"):
    u64 little-endian N | N bytes of JSON header | data buffer
The header maps tensor names to {"dtype", "shape", "data_offsets": [b, e]}
(offsets relative to the data buffer) and may hold "__metadata__", a
string -> string map.  We pad the header with trailing spaces so the data
buffer starts 8-byte aligned, as the format allows.

Supported dtypes: F32, F16, BF16.  numpy has no bfloat16, so BF16 tensors
are converted to/from float32 here (round to nearest even on write).
"""

import json
import struct
import sys

import numpy as np

DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, round to nearest even (NaN
    kept as a quiet NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounding = ((u >> 16) & 1) + np.uint32(0x7FFF)
    out = ((u + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def bf16_bits_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def _encode(arr, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "F16":
        a32 = np.asarray(arr, dtype=np.float32)
        if np.isfinite(a32).all() and np.abs(a32).max(initial=0) > 65504:
            raise SafetensorsError("value %g does not fit F16"
                                   % np.abs(a32).max())
        return np.ascontiguousarray(a32.astype("<f2")).tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(np.asarray(arr, dtype=np.float32)) \
            .astype("<u2").tobytes()
    raise SafetensorsError("unsupported dtype %s" % dtype)


def _natural_dtype(arr):
    if arr.dtype == np.float16:
        return "F16"
    return "F32"


def save_file(path, tensors, metadata=None, dtype=None):
    """tensors: name -> numpy array (any float dtype; torch tensors work
    via np.asarray(t.cpu())).  dtype: "F32"/"F16"/"BF16" for all tensors,
    or None to keep float16 arrays F16 and write everything else F32.
    metadata: dict of str -> str.  Tensors are written in the order given."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("__metadata__ %r: keys and values must "
                                       "be strings" % (k,))
        header["__metadata__"] = dict(metadata)
    # Lay the header out first, then stream tensors one at a time, so a
    # large model is never held twice in memory.
    items = []
    offset = 0
    for name, arr in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("tensor name __metadata__ is reserved")
        arr = np.asarray(arr)
        dt = dtype or _natural_dtype(arr)
        if dt not in DTYPES:
            raise SafetensorsError("unsupported dtype %s" % dt)
        nbytes = arr.size * DTYPES[dt]
        header[name] = {"dtype": dt, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + nbytes]}
        items.append((arr, dt, nbytes))
        offset += nbytes
    hjson = json.dumps(header, separators=(",", ":"),
                       ensure_ascii=False).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for arr, dt, nbytes in items:
            blob = _encode(arr, dt)
            assert len(blob) == nbytes
            f.write(blob)


def read_header(buf):
    """Parses and checks the header of file bytes buf.  Returns
    (entries: name -> info dict, metadata dict, data start offset)."""
    if len(buf) < 8:
        raise SafetensorsError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        raise SafetensorsError("header length %d exceeds the file (%d bytes)"
                               % (n, len(buf)))
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError("header is not UTF-8 JSON: %s" % e)
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in metadata.items()):
        raise SafetensorsError("__metadata__ must map strings to strings")
    start = 8 + n
    data_len = len(buf) - start
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise SafetensorsError("%s: entry is not an object" % name)
        dt = info.get("dtype")
        if dt not in DTYPES:
            raise SafetensorsError("%s: unsupported dtype %r" % (name, dt))
        shape = info.get("shape")
        offs = info.get("data_offsets")
        if (not isinstance(shape, list) or not all(
                isinstance(s, int) and s >= 0 for s in shape)):
            raise SafetensorsError("%s: bad shape %r" % (name, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or not all(
                isinstance(o, int) for o in offs)):
            raise SafetensorsError("%s: bad data_offsets %r" % (name, offs))
        b, e = offs
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not 0 <= b <= e <= data_len:
            raise SafetensorsError("%s: data_offsets %r outside the %d-byte "
                                   "data buffer" % (name, offs, data_len))
        if e - b != count * DTYPES[dt]:
            raise SafetensorsError("%s: %d bytes for shape %r of %s"
                                   % (name, e - b, shape, dt))
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise SafetensorsError("%s: data buffer has a hole or overlap at "
                                   "byte %d" % (name, b))
        pos = e
    if pos != data_len:
        raise SafetensorsError("data buffer has %d trailing bytes"
                               % (data_len - pos))
    return header, metadata, start


def load_file(path, keep_dtype=False):
    """Returns (tensors, metadata).  Tensors come back as float32 numpy
    arrays (F16/BF16 widened), or with keep_dtype as float16 for F16 (BF16
    is always widened).  Order follows the data offsets."""
    with open(path, "rb") as f:
        buf = f.read()
    entries, metadata, start = read_header(buf)
    out = {}
    for name, info in sorted(entries.items(),
                             key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        raw = buf[start + b:start + e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2")
            a = a.astype(np.float16 if keep_dtype else np.float32)
        else:
            a = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        out[name] = a.reshape(info["shape"])
    return out, metadata


def dtypes_of(path):
    """name -> dtype string, from the header only."""
    with open(path, "rb") as f:
        buf = f.read()
    entries, _, _ = read_header(buf)
    return {k: v["dtype"] for k, v in entries.items()}


def _main(argv):
    if len(argv) != 2:
        print("usage: safetensors_io.py FILE.safetensors  (prints the header)",
              file=sys.stderr)
        return 2
    try:
        tensors, md = load_file(argv[1])
    except (OSError, SafetensorsError) as e:
        print("%s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    for k, v in sorted(md.items()):
        print("meta %s = %s" % (k, v))
    dts = dtypes_of(argv[1])
    for k, v in tensors.items():
        print("%-50s %-4s %s" % (k, dts[k], list(v.shape)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
