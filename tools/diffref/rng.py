#!/usr/bin/python3
"""Reference of the engine's counter-based PRNG (docs/DESIGN.md "PRNG"):
Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
easy as 1, 2, 3", SC 2011; Random123) and Box-Muller normals, in numpy.

Element i of stream s under seed k is lane i % 4 of Philox block i // 4,
counter (b lo, b hi, s lo, s hi), key (seed lo, seed hi).

Run as a script to check the Random123 known-answer vectors.
"""

import sys

import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)


def philox4x32_10(ctr, key):
    """ctr: uint32 array [..., 4]; key: (k0, k1) ints.  Returns uint32
    [..., 4].  Round: (hi0, lo0) = mulhilo(M0, c0), (hi1, lo1) =
    mulhilo(M1, c2); c = (hi1^c1^k0, lo1, hi0^c3^k1, lo0); key += (W0, W1)."""
    c = np.asarray(ctr, dtype=np.uint64) & MASK32
    c0, c1, c2, c3 = (c[..., j] for j in range(4))
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c0           # < 2^64: exact in uint64
        p1 = M1 * c2
        hi0, lo0 = p0 >> SHIFT32, p0 & MASK32
        hi1, lo1 = p1 >> SHIFT32, p1 & MASK32
        c0, c1, c2, c3 = (hi1 ^ c1 ^ np.uint64(k0), lo1,
                          hi0 ^ c3 ^ np.uint64(k1), lo0)
        k0 = (k0 + W0) & 0xFFFFFFFF
        k1 = (k1 + W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def _blocks(seed, stream, offset, n):
    """Raw uint32 lanes for elements offset .. offset+n-1 of a stream."""
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    first = offset // 4
    last = (offset + n - 1) // 4
    b = np.arange(first, last + 1, dtype=np.uint64)
    s = int(stream)
    ctr = np.stack([b & MASK32, b >> SHIFT32,
                    np.full_like(b, s & 0xFFFFFFFF),
                    np.full_like(b, (s >> 32) & 0xFFFFFFFF)], axis=-1)
    seed = int(seed)
    raw = philox4x32_10(ctr, (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF))
    start = offset - first * 4
    return raw.reshape(-1)[start:start + n], raw, start


def uniform(seed, stream, offset, n):
    """U_j = (u_j + 0.5) / 2^32 as float64, elements offset .. offset+n-1."""
    lanes, _, _ = _blocks(seed, stream, offset, n)
    return (lanes.astype(np.float64) + 0.5) / 4294967296.0


def normal(seed, stream, offset, n):
    """Box-Muller in double on lane pairs (U0, U1), (U2, U3) of each block:
    r = sqrt(-2 ln U_a), th = 2 pi U_b, z_a = r cos th, z_b = r sin th;
    cast to float32."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    _, raw, start = _blocks(seed, stream, offset, n)
    u = (raw.astype(np.float64) + 0.5) / 4294967296.0
    z = np.empty_like(u)
    for a in (0, 2):
        r = np.sqrt(-2.0 * np.log(u[:, a]))
        th = 2.0 * np.pi * u[:, a + 1]
        z[:, a] = r * np.cos(th)
        z[:, a + 1] = r * np.sin(th)
    return z.reshape(-1)[start:start + n].astype(np.float32)


def normal_like(seed, stream, shape):
    """A [B, C, H, W] (or any shape) draw of stream `stream` from element 0:
    image k of a batch uses elements k*C*H*W onward."""
    n = int(np.prod(shape))
    return normal(seed, stream, 0, n).reshape(shape)


KNOWN_ANSWERS = [
    # (ctr, key, expected) from Random123's kat_vectors for philox4x32_10
    ((0, 0, 0, 0), (0, 0),
     (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff, 0xffffffff),
     (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344),
     (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


def self_test():
    ok = True
    for ctr, key, want in KNOWN_ANSWERS:
        got = tuple(int(v) for v in philox4x32_10(np.array(ctr), key))
        good = got == want
        ok &= good
        print("philox ctr=%s key=%s -> %s %s"
              % (" ".join("%08x" % c for c in ctr),
                 " ".join("%08x" % k for k in key),
                 " ".join("%08x" % g for g in got), "ok" if good else "FAIL"))
    # Offsets are consistent: a window equals the same slice of a longer draw.
    full = normal(1234, 7, 0, 37)
    ok &= bool(np.array_equal(full[5:30], normal(1234, 7, 5, 25)))
    ok &= bool(np.array_equal(uniform(9, 2, 0, 11)[3:], uniform(9, 2, 3, 8)))
    z = normal(42, 0, 0, 1 << 16)
    print("normal(42, 0): mean %.4f std %.4f" % (z.mean(), z.std()))
    ok &= abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    return ok


if __name__ == "__main__":
    sys.exit(0 if self_test() else 1)
