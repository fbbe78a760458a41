#!/usr/bin/python3
"""Summarise a training run's loss.csv: a markdown table of window means
and a PNG of the curves.

    tools/train/summarize_log.py models/training/fashion [--window 250]

Writes <run>/loss-summary.md and <run>/loss.png.
"""
import argparse
import csv
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--window", type=int, default=250)
    args = ap.parse_args()
    with open(os.path.join(args.run_dir, "loss.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit("%s: loss.csv has no rows" % args.run_dir)
    step = np.array([int(r["step"]) for r in rows])
    cols = {k: np.array([float(r[k]) for r in rows])
            for k in ("loss", "mse", "vb", "grad_norm", "sec_per_step")}
    w = args.window
    lines = ["| steps | loss | L_simple (mse) | L_vlb term (bits/dim) | "
             "grad norm | s/step |", "|---|---|---|---|---|---|"]
    for lo in range(0, int(step.max()), w):
        m = (step > lo) & (step <= lo + w)
        if not m.any():
            continue
        lines.append("| %d-%d | %.4f | %.4f | %.4f | %.2f | %.2f |" % (
            lo + 1, min(lo + w, int(step.max())), cols["loss"][m].mean(),
            cols["mse"][m].mean(), cols["vb"][m].mean(),
            cols["grad_norm"][m].mean(), np.median(cols["sec_per_step"][m])))
    with open(os.path.join(args.run_dir, "loss-summary.md"), "w") as f:
        f.write("# Loss by %d-step window (%d steps)\n\n" % (w, step.max()))
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    k = max(1, min(100, len(step) // 20))
    kern = np.ones(k) / k
    for ax, key, label in ((axes[0], "mse", "L_simple"),
                           (axes[1], "vb", "L_vlb term (bits/dim)")):
        ax.plot(step, cols[key], alpha=0.25, lw=0.5)
        if len(step) >= k:
            ax.plot(step[k - 1:], np.convolve(cols[key], kern, "valid"),
                    label="mean of %d steps" % k)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.run_dir, "loss.png"), dpi=90)


if __name__ == "__main__":
    main()
