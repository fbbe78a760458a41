#!/usr/bin/python3
"""Held-out accuracy of a noisy-image classifier by timestep band, through
the C engine (`diffuse classify`).

    tools/eval/classifier_bands.py --classifier models/fashion-classifier.safetensors \
        --data fashion [--per-band 1000] [--json models/eval/fashion-classifier-bands.json]

The test split of tools/train/cache/<data>.npz (never seen in training:
tools/train/train_classifier.py reads train_x only) is noised to
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM eq. 4) with the
schedule and T the classifier file records, t uniform within each band
[0,250), [250,500), [500,750), [750,1000) (quarters of T), noise and t
from a fixed seed.  `diffuse classify` gives the logits; the script
reports, per band, the accuracy and the class-balanced accuracy (mean of
the per-class accuracies; the emoji test split is 57 % People & Body).

--export-test N writes N held-out images per class side by side as one
PNG strip (8-bit, as the data set has them) and their labels, one line,
to tests/data/heldout/<data>-test.png and .labels for test-shipped-models.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from diffref.diffusion import betas_for  # noqa: E402
from evaluate import find_diffuse, model_metadata  # noqa: E402


def load_test(data):
    path = os.path.join(ROOT, "tools", "train", "cache", data + ".npz")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(
            ROOT, "tools", "train", "prepare_%s.py" % data)], check=True)
    d = np.load(path)
    x = d["test_x"].astype(np.float32) / 127.5 - 1.0
    return x, d["test_y"].astype(np.int64), [str(n) for n in d["class_names"]]


def export_test(data, n_per_class):
    from PIL import Image
    path = os.path.join(ROOT, "tools", "train", "cache", data + ".npz")
    d = np.load(path)
    x, y, names = d["test_x"], d["test_y"], d["class_names"]
    rng = np.random.default_rng(20261207)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), n_per_class,
                                     replace=False)
                          for c in range(len(names))])
    out = os.path.join(ROOT, "tests", "data", "heldout")
    os.makedirs(out, exist_ok=True)
    strip = np.concatenate(list(x[idx]), axis=2).transpose(1, 2, 0)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[strip.shape[2]]
    Image.fromarray(strip[:, :, 0] if mode == "L" else strip, mode).save(
        os.path.join(out, data + "-test.png"), optimize=True)
    with open(os.path.join(out, data + "-test.labels"), "w") as f:
        f.write(" ".join(str(int(v)) for v in y[idx]) + "\n")
    print("wrote %d held-out %s images to %s" % (len(idx), data, out))


def classify(diffuse, clf, xt, t, threads):
    with tempfile.TemporaryDirectory() as tmp:
        xp, tp, op = (os.path.join(tmp, n) for n in ("x.npy", "t.npy",
                                                     "logits.npy"))
        np.save(xp, xt.astype(np.float32))
        np.save(tp, t.astype(np.float32))
        subprocess.run([diffuse, "classify", "--model", clf, "--input", xp,
                        "--timestep", tp, "--out", op,
                        "--threads", str(threads)], check=True)
        return np.load(op)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classifier")
    ap.add_argument("--data", required=True, choices=("fashion", "emoji"))
    ap.add_argument("--per-band", type=int, default=1000,
                    help="test images per band (at most the split's size; "
                    "each image once per band)")
    ap.add_argument("--bands", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--diffuse", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--export-test", type=int, default=0, metavar="N")
    a = ap.parse_args()
    if a.export_test:
        export_test(a.data, a.export_test)
        return
    if not a.classifier:
        ap.error("--classifier is required")
    diffuse = find_diffuse(a.diffuse)
    md = model_metadata(a.classifier)
    T = int(md["diffusion_steps"])
    abar = np.cumprod(1.0 - betas_for(md["noise_schedule"], T))
    x, y, names = load_test(a.data)
    rng = np.random.default_rng(a.seed)
    n = min(a.per_band, len(y))
    width = T // a.bands
    rows = []
    for b in range(a.bands):
        lo, hi = b * width, (b + 1) * width if b < a.bands - 1 else T
        idx = rng.permutation(len(y))[:n]
        t = rng.integers(lo, hi, n)
        eps = rng.standard_normal(x[idx].shape)
        s = np.sqrt(abar[t])[:, None, None, None]
        xt = s * x[idx] + np.sqrt(1.0 - s ** 2) * eps
        logits = np.concatenate([
            classify(diffuse, a.classifier, xt[i:i + 500], t[i:i + 500],
                     a.threads) for i in range(0, n, 500)])
        ok = logits.argmax(1) == y[idx]
        per_class = [float(ok[y[idx] == c].mean())
                     for c in range(len(names)) if (y[idx] == c).any()]
        rows.append({"band": [lo, hi], "n": int(n),
                     "accuracy": round(float(ok.mean()), 4),
                     "balanced_accuracy": round(float(np.mean(per_class)), 4)})
        print("t in [%d, %d): accuracy %.3f, class-balanced %.3f (%d images)"
              % (lo, hi, ok.mean(), np.mean(per_class), n), flush=True)
    res = {"classifier": os.path.relpath(os.path.abspath(a.classifier), ROOT),
           "training_step": md.get("training_step"), "data": a.data,
           "split": "test (held out)", "chance": round(1.0 / len(names), 4),
           "seed": a.seed, "bands": rows}
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
