#!/usr/bin/python3
"""Prepare the Noto emoji images (npm emoji-datasource-google) at 32x32 RGBA.

Installs emoji-datasource-google@16.0.0 with npm into tools/train/cache/npm
(git-ignored) when absent, reads img/google/64/*.png (Noto Emoji,
Apache-2.0; emoji.json is MIT) and writes tools/train/cache/emoji.npz:
  train_x [N, 4, 32, 32] uint8 (straight, i.e. un-premultiplied, RGBA),
  train_y [N], test_x, test_y, class_names, train_name, test_name.

Labels: the emoji's Unicode category from emoji.json.  "Component" (five
skin-tone swatches) is dropped, leaving 9 classes.  Skin tones: an emoji
with skin_variations contributes its default (yellow) image plus its five
single-tone variants under the same label; mixed two-tone variants
(e.g. couples with two different tones, 295 images) are dropped because
they only re-colour images already present.  The trainer samples classes
uniformly, so People & Body's many tone variants do not swamp the rest.

Split: about 10 % of the base emoji of every category, chosen with a fixed
seed, go to the test split together with all their tone variants, so no
variant of a test emoji is seen in training.

Downscale 64 -> 32: each output pixel averages its 2x2 block in
premultiplied alpha (RGB*A), then divides by the mean alpha
(un-premultiply), so transparent pixels' arbitrary colours never bleed
into visible edges.  Fully transparent pixels get RGB 0.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")
NPM_DIR = os.path.join(CACHE, "npm")
PKG = "emoji-datasource-google"
PKG_VERSION = "16.0.0"
PKG_DIR = os.path.join(NPM_DIR, "node_modules", PKG)
CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature",
              "Food & Drink", "Travel & Places", "Activities", "Objects",
              "Symbols", "Flags"]
TEST_FRACTION = 0.1
SPLIT_SEED = 20261125


def ensure_package():
    if os.path.exists(os.path.join(PKG_DIR, "emoji.json")):
        return
    os.makedirs(NPM_DIR, exist_ok=True)
    print("installing %s@%s with npm" % (PKG, PKG_VERSION), file=sys.stderr)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                    NPM_DIR, "%s@%s" % (PKG, PKG_VERSION)], check=True)


def downscale_premultiplied(rgba):
    """rgba: uint8 [64, 64, 4] straight alpha -> uint8 [32, 32, 4]."""
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    pre = rgba[..., :3].astype(np.float64) * a           # premultiply
    h, w = rgba.shape[0] // 2, rgba.shape[1] // 2
    pre = pre.reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    a = a.reshape(h, 2, w, 2, 1).mean(axis=(1, 3))
    rgb = np.where(a > 0, pre / np.maximum(a, 1e-12), 0.0)  # un-premultiply
    out = np.concatenate([rgb, a * 255.0], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def load_image(name):
    path = os.path.join(PKG_DIR, "img", "google", "64", name)
    im = Image.open(path).convert("RGBA")
    if im.size != (64, 64):
        im = im.resize((64, 64), Image.LANCZOS)
    return downscale_premultiplied(np.asarray(im))


def collect():
    with open(os.path.join(PKG_DIR, "emoji.json"), encoding="utf-8") as f:
        entries = json.load(f)
    groups = []   # (label, [image file names], short name)
    for e in sorted(entries, key=lambda e: e["sort_order"]):
        if e["category"] not in CATEGORIES or not e.get("has_img_google"):
            continue
        label = CATEGORIES.index(e["category"])
        files = [e["image"]]
        for key, v in sorted((e.get("skin_variations") or {}).items()):
            if "-" in key or not v.get("has_img_google"):
                continue  # mixed two-tone variant, or no Noto image
            files.append(v["image"])
        groups.append((label, files, e["short_name"]))
    return groups


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(CACHE, "emoji.npz"))
    args = ap.parse_args()
    ensure_package()
    groups = collect()
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(groups), dtype=bool)
    for c in range(len(CATEGORIES)):
        idx = [i for i, g in enumerate(groups) if g[0] == c]
        n_test = max(1, int(round(TEST_FRACTION * len(idx))))
        is_test[rng.choice(idx, size=n_test, replace=False)] = True
    split = {False: ([], [], []), True: ([], [], [])}
    for g, t in zip(groups, is_test):
        label, files, short = g
        for fn in files:
            split[t][0].append(load_image(fn).transpose(2, 0, 1))
            split[t][1].append(label)
            split[t][2].append(os.path.splitext(fn)[0])
    arrays = {}
    for t, key in ((False, "train"), (True, "test")):
        arrays[key + "_x"] = np.stack(split[t][0])
        arrays[key + "_y"] = np.array(split[t][1], dtype=np.int64)
        arrays[key + "_name"] = np.array(split[t][2])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp.npz"
    np.savez(tmp, class_names=np.array(CATEGORIES), **arrays)
    os.replace(tmp, args.out)
    print("wrote %s: train %s, test %s" % (args.out, arrays["train_x"].shape,
                                           arrays["test_x"].shape))
    for key in ("train", "test"):
        counts = np.bincount(arrays[key + "_y"], minlength=len(CATEGORIES))
        print(key, dict(zip(CATEGORIES, counts.tolist())))


if __name__ == "__main__":
    main()
