#!/usr/bin/python3
"""Writes the PNG and .npy fixtures for tests/test-image-io.c.

The PNGs are encoded here by hand (zlib + struct, every filter type,
Adam7 interlacing), independently of libpng, which the engine decodes
with. Next to each valid NAME.png goes NAME.npy: the float32 [1, C, H, W]
image in [-1, 1] with the file's own channels after expansion (palette ->
RGB, tRNS -> alpha, sub-byte grey -> 8 bits), value / maxval * 2 - 1.

The .npy fixtures (valid and hostile) go to npy/.

Run from anywhere: /usr/bin/python3 tests/data/images/make_images.py
"""
import os
import struct
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NPY_DIR = os.path.join(HERE, "npy")
W, H = 5, 3


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def ihdr(w, h, depth, ctype, interlace=0):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp):
    """rows: list of bytes (unfiltered scanlines). Row y uses filter y % 5."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        ftype = y % 5
        out.append(ftype)
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
            out.append((v - pred) & 0xFF)
        prev = row
    return bytes(out)


def pack_row(samples, depth):
    """samples: flat list of sample values of one row."""
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        byte = 0
        for j in range(per):
            s = samples[i + j] if i + j < len(samples) else 0
            byte |= s << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def encode(samples, depth, ctype, extra=b"", interlace=0):
    """samples: array [H, W, S] of raw sample values."""
    h, w, s = samples.shape
    bpp = max(1, s * depth // 8)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            rows = [pack_row(list(r.reshape(-1)), depth) for r in sub]
            raw += filter_rows(rows, bpp)
    else:
        rows = [pack_row(list(r.reshape(-1)), depth) for r in samples]
        raw = filter_rows(rows, bpp)
    return (b"\x89PNG\r\n\x1a\n" + ihdr(w, h, depth, ctype, interlace) + extra
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def pattern(s, maxval):
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(s), indexing="ij")
    if maxval == 255:
        return (x * 37 + y * 91 + c * 53 + 11) % 256
    return (x * 7919 + y * 104729 + c * 30011 + 17) % 65536


def save(name, png_bytes, expected=None, maxval=255):
    with open(os.path.join(HERE, name + ".png"), "wb") as f:
        f.write(png_bytes)
    if expected is not None:
        arr = expected.astype(np.float64) / maxval * 2 - 1
        arr = arr.transpose(2, 0, 1)[None].astype(np.float32)
        np.save(os.path.join(HERE, name + ".npy"), np.ascontiguousarray(arr))


def main():
    # 8-bit grey, grey+alpha, RGB, RGBA; colour types 0, 4, 2, 6
    for name, s, ctype in [("grey8", 1, 0), ("grey-alpha8", 2, 4),
                           ("rgb8", 3, 2), ("rgba8", 4, 6)]:
        p = pattern(s, 255)
        save(name, encode(p, 8, ctype), p)
    # the same RGB image, Adam7-interlaced
    p = pattern(3, 255)
    save("rgb8-interlaced", encode(p, 8, 2, interlace=1), p)
    # 16-bit RGB and RGBA
    for name, s, ctype in [("rgb16", 3, 2), ("rgba16", 4, 6), ("grey16", 1, 0)]:
        p = pattern(s, 65535)
        save(name, encode(p, 16, ctype), p, maxval=65535)
    # 4-bit palette with a tRNS chunk giving alpha to the first 5 entries
    n = 12
    pal = [(i * 20, 255 - i * 20, (i * 97) % 256) for i in range(n)]
    alpha = [i * 50 for i in range(5)]
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    idx = ((xx + 2 * yy) % n)[..., None]
    extra = (chunk(b"PLTE", bytes(v for e in pal for v in e))
             + chunk(b"tRNS", bytes(alpha)))
    exp = np.array([[list(pal[i]) + [alpha[i] if i < 5 else 255] for i in row]
                    for row in idx[..., 0]])
    save("palette4-trns", encode(idx, 4, 3, extra), exp)
    # palette without tRNS (-> RGB)
    extra = chunk(b"PLTE", bytes(v for e in pal for v in e))
    exp = np.array([[list(pal[i]) for i in row] for row in idx[..., 0]])
    save("palette4", encode(idx, 4, 3, extra), exp)
    # 1-bit grey (-> 0 / 255)
    bits = ((xx * 3 + yy) % 2)[..., None]
    save("grey1", encode(bits, 1, 0), bits * 255)
    # 2-bit grey (-> v * 85)
    two = ((xx + yy) % 4)[..., None]
    save("grey2", encode(two, 2, 0), two * 85)
    # 8-bit grey with tRNS: value 102 (x=1,y=1: 37+91+11... see pattern) is transparent
    p = pattern(1, 255)
    key = int(p[1, 1, 0])
    a = np.where(p == key, 0, 255)
    save("grey8-trns", encode(p, 8, 0, chunk(b"tRNS", struct.pack(">H", key))),
         np.concatenate([p, a], axis=2))
    # RGB 8-bit with tRNS colour key on pixel (2, 0)
    p = pattern(3, 255)
    k = p[0, 2]
    a = np.where(np.all(p == k, axis=2, keepdims=True), 0, 255)
    save("rgb8-trns", encode(p, 8, 2, chunk(b"tRNS", struct.pack(">HHH", *k))),
         np.concatenate([p, a], axis=2))

    # ---- corrupt files (no .npy) ----
    good = encode(pattern(3, 255), 8, 2)
    idat = good.index(b"IDAT")
    save("corrupt-truncated", good[:idat + 20])
    save("corrupt-no-iend", good[:good.index(b"IEND") - 4])
    bad = bytearray(good)
    bad[idat + 10] ^= 0xFF           # IDAT byte flipped: CRC mismatch
    save("corrupt-crc", bytes(bad))
    save("corrupt-not-png", b"this is not a PNG file at all\n")
    save("corrupt-empty", b"")
    # valid CRCs, but an IDAT that is not a zlib stream
    save("corrupt-zlib", b"\x89PNG\r\n\x1a\n" + ihdr(W, H, 8, 2)
         + chunk(b"IDAT", b"\x00garbage that is not zlib")
         + chunk(b"IEND", b""))
    # a zlib stream with too few rows
    short = zlib.compress(filter_rows([pack_row([1] * W * 3, 8)], 3))
    save("corrupt-short-data", b"\x89PNG\r\n\x1a\n" + ihdr(W, H, 8, 2)
         + chunk(b"IDAT", short) + chunk(b"IEND", b""))
    # width 0 (invalid IHDR), and absurd dimensions with valid CRCs
    save("corrupt-zero-width", b"\x89PNG\r\n\x1a\n" + ihdr(0, H, 8, 2)
         + chunk(b"IEND", b""))
    save("corrupt-huge", b"\x89PNG\r\n\x1a\n" + ihdr(100000, 100000, 8, 2)
         + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    save("corrupt-huge-area", b"\x89PNG\r\n\x1a\n" + ihdr(16000, 16000, 8, 6)
         + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    # palette image whose indices exceed the palette (2 entries, index 11)
    extra = chunk(b"PLTE", bytes([0, 0, 0, 255, 255, 255]))
    save("corrupt-palette-index", encode(idx, 4, 3, extra))

    npy_fixtures()


def npy_raw(header_dict_text, data, major=1):
    h = header_dict_text.encode("latin1")
    if major == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<I", len(h)) + h + data


def npy_fixtures():
    os.makedirs(NPY_DIR, exist_ok=True)
    fmt = np.lib.format

    def path(name):
        return os.path.join(NPY_DIR, name + ".npy")

    a = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5) / 3
    for v in [(1, 0), (2, 0), (3, 0)]:
        with open(path("good-v%d" % v[0]), "wb") as f:
            fmt.write_array(f, a, version=v)
    np.save(path("good-1d"), np.array([1.5, -2.25, 3e-8], dtype=np.float32))
    np.save(path("good-0d"), np.float32(42.5))
    np.save(path("good-4d"), np.linspace(-1, 1, 2 * 1 * 3 * 2,
                                         dtype=np.float32).reshape(2, 1, 3, 2))
    np.save(path("good-empty"), np.zeros((0, 3), dtype=np.float32))
    # 5-D: diffuse_npy_load_nd only (the [T, B, C, H, W] noise of nll)
    np.save(path("good-5d"), np.linspace(-1, 1, 2 * 1 * 2 * 1 * 3,
                                         dtype=np.float32).reshape(2, 1, 2, 1, 3))
    # errors
    np.save(path("bad-f8"), np.zeros((2, 2), dtype=np.float64))
    np.save(path("bad-i4"), np.zeros((2, 2), dtype=np.int32))
    np.save(path("bad-fortran"), np.asfortranarray(np.zeros((2, 3), dtype=np.float32)))
    np.save(path("bad-5d"), np.zeros((1, 1, 1, 1, 2), dtype=np.float32))
    np.save(path("bad-6d"), np.zeros((1, 1, 1, 1, 2, 1), dtype=np.float32))
    np.save(path("bad-big-endian"), np.zeros(3, dtype=">f4"))
    good = open(path("good-v1"), "rb").read()
    open(path("bad-truncated-data"), "wb").write(good[:-5])
    open(path("bad-extra-data"), "wb").write(good + b"\0\0\0\0")
    open(path("bad-truncated-header"), "wb").write(good[:40])
    open(path("bad-magic"), "wb").write(b"\x93NUMPZ" + good[6:])
    open(path("bad-version"), "wb").write(good[:6] + b"\x04\x00" + good[8:])
    open(path("bad-header-len"), "wb").write(good[:8] + b"\xff\xff" + good[10:])
    d = b"\0" * 16
    open(path("bad-overflow"), "wb").write(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, "
        "'shape': (4294967296, 4294967296, 4294967296), }\n", d))
    open(path("bad-negative"), "wb").write(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }\n", d))
    open(path("bad-no-shape"), "wb").write(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, }\n", d))
    open(path("bad-unclosed"), "wb").write(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,\n", d))
    open(path("bad-nul"), "wb").write(npy_raw(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\0\n", d, 2))
    open(path("bad-empty"), "wb").write(b"")


if __name__ == "__main__":
    main()
