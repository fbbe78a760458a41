#!/usr/bin/python3
"""Train the evaluation classifier on a data set's REAL training images.

    tools/eval/train_classifier.py fashion     # or: emoji

Reads tools/train/cache/<name>.npz (made by tools/train/prepare_<name>.py,
run first when absent), trains tools/eval/classifier.py's SmallCNN with
Adam, and writes tools/eval/classifiers/<name>.safetensors with its test
accuracy (overall and class-balanced) in the metadata.  Emoji: classes are
weighted inversely to their frequency (People & Body has many skin-tone
variants) and images are randomly flipped and shifted by up to 2 pixels.
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

import classifier  # tools/eval/classifier.py  # noqa: E402

SETTINGS = {
    "fashion": {"epochs": 6, "augment": False, "balance": False},
    "emoji": {"epochs": 40, "augment": True, "balance": True},
}


def load_npz(name):
    path = os.path.join(ROOT, "tools", "train", "cache", name + ".npz")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(
            ROOT, "tools", "train", "prepare_%s.py" % name)], check=True)
    return np.load(path)


def to_float(x_uint8):
    return torch.from_numpy(x_uint8).float() / 127.5 - 1.0


def augment(x, gen):
    """Random horizontal flip and shift by up to 2 px (zero fill = -1)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), value=-1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def evaluate(model, x, y, n_classes):
    pred, _ = classifier.predict(model, x)
    acc = float((pred == y).mean())
    per_class = [float((pred[y == c] == c).mean()) for c in range(n_classes)]
    return acc, float(np.mean(per_class)), per_class


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", choices=sorted(SETTINGS))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    s = SETTINGS[args.name]
    epochs = args.epochs or s["epochs"]
    d = load_npz(args.name)
    names = [str(n) for n in d["class_names"]]
    xtr, ytr = to_float(d["train_x"]), torch.from_numpy(d["train_y"]).long()
    xte, yte = to_float(d["test_x"]), d["test_y"]
    nc = len(names)
    model = classifier.SmallCNN(xtr.shape[1], nc)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps_per_epoch = (xtr.shape[0] + 127) // 128
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    weight = None
    if s["balance"]:
        counts = torch.bincount(ytr, minlength=nc).float()
        weight = counts.sum() / (nc * counts)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        total = 0.0
        for i in range(0, xtr.shape[0], 128):
            idx = perm[i:i + 128]
            xb = xtr[idx]
            if s["augment"]:
                xb = augment(xb, gen)
            loss = F.cross_entropy(model(xb), ytr[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.shape[0]
        model.eval()
        acc, bacc, _ = evaluate(model, xte, yte, nc)
        print("epoch %d: train loss %.4f, test accuracy %.4f (balanced %.4f), "
              "%.0f s" % (ep + 1, total / xtr.shape[0], acc, bacc,
                          time.time() - t0), flush=True)
    acc, bacc, per_class = evaluate(model, xte, yte, nc)
    out = os.path.join(HERE, "classifiers", args.name + ".safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    classifier.save(model, out, {
        "class_names": names, "test_accuracy": "%.4f" % acc,
        "test_balanced_accuracy": "%.4f" % bacc,
        "test_per_class_accuracy": json.dumps([round(a, 4) for a in per_class]),
        "epochs": str(epochs), "seed": str(args.seed),
        "trained_on": "tools/train/cache/%s.npz train split" % args.name})
    print("wrote %s: test accuracy %.4f, balanced %.4f" % (out, acc, bacc))
    for n, a in zip(names, per_class):
        print("  %-20s %.3f" % (n, a))


if __name__ == "__main__":
    main()
