#!/usr/bin/python3
"""Prepare Fashion-MNIST for training: 28x28 grey -> 32x32 (zero padding).

Reads Debian's dataset-fashion-mnist (IDX files, MIT licence) and writes
tools/train/cache/fashion.npz with uint8 arrays
  train_x [60000, 1, 32, 32], train_y [60000] (int64),
  test_x  [10000, 1, 32, 32], test_y  [10000],
  class_names (the 10 official names).
Pixels p in 0..255 map to the network's [-1, 1] as p / 127.5 - 1 at load
time (docs/DESIGN.md, engine/diffuse.h).  The 2-pixel zero border matches
the black background of the originals, so padding adds no edge.

The package is installed with apt-get when its files are absent.
"""
import argparse
import gzip
import os
import subprocess
import sys

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "cache", "fashion.npz")


def ensure_package():
    if os.path.exists(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz")):
        return
    print("installing dataset-fashion-mnist with apt-get", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"],
                   check=True)


def read_idx(path):
    """IDX format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    off = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=off)
    if arr.size != int(np.prod(dims)):
        raise ValueError("%s: size mismatch" % path)
    return arr.reshape(dims)


def pad32(images):
    out = np.zeros((images.shape[0], 1, 32, 32), dtype=np.uint8)
    out[:, 0, 2:30, 2:30] = images
    return out


def load_split(prefix):
    x = read_idx(os.path.join(DATA_DIR, prefix + "-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA_DIR, prefix + "-labels-idx1-ubyte.gz"))
    if x.shape[0] != y.shape[0] or x.shape[1:] != (28, 28):
        raise ValueError("unexpected shapes %s %s" % (x.shape, y.shape))
    return pad32(x), y.astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    ensure_package()
    train_x, train_y = load_split("train")
    test_x, test_y = load_split("t10k")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp.npz"
    np.savez(tmp, train_x=train_x, train_y=train_y, test_x=test_x,
             test_y=test_y, class_names=np.array(CLASS_NAMES))
    os.replace(tmp, args.out)
    print("wrote %s: train %s, test %s, classes %d"
          % (args.out, train_x.shape, test_x.shape, len(CLASS_NAMES)))
    print("train class counts:", np.bincount(train_y).tolist())


if __name__ == "__main__":
    main()
