#!/usr/bin/python3
"""Bits per dimension of a shipped model on held-out images, through the C
engine (`diffuse nll`, the variational bound of improved-diffusion's
calc_bpd_loop).

    tools/eval/likelihood.py --model models/fashion.safetensors --data fashion \
        --n 200 --timesteps 100 --full 6 --out models/eval/fashion-nll

Images: the first n of a fixed-seed permutation of the held-out split of
tools/train/cache/DATA.npz (tools/train/prepare_DATA.py), with their true
labels (--labels true) or the null class (--labels null: the model as an
unconditional one).  One run gives the bound under the learned variance
and under the fixed β̃ (fixed-small) and β (fixed-large) from the same
network passes.

--timesteps N: the sum over t is an ESTIMATE from N evenly strided t (see
`diffuse nll --help`).  --full K additionally runs the exact sum over all T
on the first K of those images; their noise is the same per t (seeded
streams by t and image index), so the estimate's error on them is the
difference of the two runs, reported per variance.

Writes OUT.json (both runs' summaries and per-image totals) and OUT.md.

    tools/eval/likelihood.py --bands FULL.json [FULL.json...] --out OUT

summarises full-sum `diffuse nll --out` files instead: per variance the
mean total over all their images and how it splits over bands of t
(t = 0, 1-9, 10-99, 100-999 and the prior), which shows why an evenly
strided estimate, whose first KL term sits at t = stride, misses most of
the bound.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from evaluate import find_diffuse, training_step  # noqa: E402

VARIANCES = "learned,fixed-small,fixed-large"


def held_out(data, n, seed=0):
    d = np.load(os.path.join(ROOT, "tools", "train", "cache", data + ".npz"))
    x, y = d["test_x"], d["test_y"]
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    if len(order) < n:
        raise SystemExit("%s: the held-out split has only %d images"
                         % (data, len(x)))
    return (x[order].astype(np.float32) / 127.5 - 1.0), y[order], order


def run_nll(diffuse, model, x, labels, timesteps, threads, tmp, tag):
    xp = os.path.join(tmp, tag + ".x.npy")
    lp = os.path.join(tmp, tag + ".labels.npy")
    out = os.path.join(tmp, tag + ".json")
    np.save(xp, x)
    np.save(lp, labels.astype(np.float32))
    cmd = ["nice", diffuse, "nll", "--model", model, "--input", xp,
           "--class", lp, "--variance", VARIANCES, "--seed", "0",
           "--threads", str(threads), "--batch", "20", "-q", "--out", out]
    if timesteps:
        cmd += ["--timesteps", str(timesteps)]
    t0 = time.time()
    cpu0 = os.times()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    cpu1 = os.times()
    with open(out) as f:
        r = json.load(f)
    r["wall_s"] = time.time() - t0
    r["cpu_s"] = (cpu1.children_user - cpu0.children_user
                  + cpu1.children_system - cpu0.children_system)
    return r


def summary(r):
    """Per variance: mean total, its standard error over images, the
    decoder (t = 0) and KL parts."""
    out = {}
    for v in r["variances"]:
        tot = np.array(v["total_bpd"])
        dec = np.array(v["terms_bpd"][-1])      # t = 0 is the last term
        out[v["variance"]] = {
            "mean_total_bpd": float(tot.mean()),
            "sem_total_bpd": float(tot.std(ddof=1) / np.sqrt(len(tot)))
            if len(tot) > 1 else None,
            "mean_decoder_bpd": float(dec.mean()),
            "mean_kl_bpd": float(tot.mean() - dec.mean()
                                 - np.mean(r["prior_bpd"])),
            "total_bpd": [float(t) for t in tot],
        }
    return out


BANDS = [(0, 0), (1, 9), (10, 99), (100, 999), (1000, 10 ** 9)]


def bands_main(paths, out):
    """Mean bits/dim per band of t over every image of full-sum runs."""
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    if any(r["estimate"] for r in runs):
        raise SystemExit("--bands needs full sums (no --timesteps)")
    T = runs[0]["T"]
    names = [v["variance"] for v in runs[0]["variances"]]
    res = {"runs": [os.path.basename(p) for p in paths], "T": T,
           "n_images": sum(r["images"] for r in runs), "variances": {}}
    prior = np.concatenate([r["prior_bpd"] for r in runs])
    for vi, name in enumerate(names):
        # terms [t index][image], t descending: term j is t = T-1-j
        terms = np.concatenate([np.array(r["variances"][vi]["terms_bpd"])
                                for r in runs], axis=1)
        tot = np.concatenate([r["variances"][vi]["total_bpd"] for r in runs])
        t_of = np.array(runs[0]["timesteps"])
        band = {}
        for lo, hi in BANDS:
            sel = (t_of >= lo) & (t_of <= hi)
            if sel.any():
                band["t %d-%d" % (lo, min(hi, T - 1))] = \
                    float(terms[sel].sum(0).mean())
        band["prior"] = float(prior.mean())
        res["variances"][name] = {
            "mean_total_bpd": float(tot.mean()),
            "sem_total_bpd": float(tot.std(ddof=1) / np.sqrt(len(tot))),
            "total_bpd": [float(v) for v in tot], "bands": band}
    with open(out + ".json.tmp", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(out + ".json.tmp", out + ".json")
    keys = list(res["variances"][names[0]]["bands"])
    lines = ["Full sum over all T = %d timesteps, %d images:" % (T, res["n_images"]),
             "", "| variance | bits/dim | ± s.e. | " + " | ".join(keys) + " |",
             "|---|---|---|" + "---|" * len(keys)]
    for name, v in res["variances"].items():
        lines.append("| %s | %.4f | %.4f | " % (name, v["mean_total_bpd"],
                                               v["sem_total_bpd"])
                     + " | ".join("%.3g" % v["bands"][k] for k in keys) + " |")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main():
    if "--bands" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--bands", nargs="+", required=True)
        ap.add_argument("--out", required=True)
        a = ap.parse_args()
        return bands_main(a.bands, a.out)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, choices=["fashion", "emoji"])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--timesteps", type=int, default=100)
    ap.add_argument("--full", type=int, default=0,
                    help="also the full sum on the first K images")
    ap.add_argument("--labels", choices=["true", "null"], default="true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--diffuse", default=None)
    ap.add_argument("--out", required=True, help="OUT: writes OUT.json/.md")
    args = ap.parse_args()

    diffuse = find_diffuse(args.diffuse)
    x, y, order = held_out(args.data, args.n)
    labels = y if args.labels == "true" else np.full_like(y, -1)
    res = {"model": os.path.relpath(args.model, ROOT),
           "training_step": training_step(args.model), "data": args.data,
           "split": "test (held out)", "n_images": args.n,
           "selection": "first n of numpy default_rng(0).permutation of the "
                        "test split",
           "labels": args.labels, "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        est = run_nll(diffuse, args.model, x, labels, args.timesteps,
                      args.threads, tmp, "est")
        res["estimate"] = {"timesteps": est["n_terms"], "T": est["T"],
                           "cpu_s": est["cpu_s"], "wall_s": est["wall_s"],
                           "mean_prior_bpd": est["mean_prior_bpd"],
                           "variances": summary(est)}
        if args.full:
            k = args.full
            full = run_nll(diffuse, args.model, x[:k], labels[:k], 0,
                           args.threads, tmp, "full")
            fs = summary(full)
            check = {}
            for name, s in fs.items():
                e = np.array(res["estimate"]["variances"][name]
                             ["total_bpd"][:k])
                f = np.array(s["total_bpd"])
                check[name] = {"full_mean_bpd": float(f.mean()),
                               "estimate_mean_bpd": float(e.mean()),
                               "mean_error_bpd": float((e - f).mean()),
                               "max_abs_error_bpd": float(np.abs(e - f).max())}
            res["full"] = {"n_images": k, "T": full["T"],
                           "cpu_s": full["cpu_s"], "wall_s": full["wall_s"],
                           "variances": fs, "estimate_vs_full": check}
    with open(args.out + ".json.tmp", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(args.out + ".json.tmp", args.out + ".json")

    lines = ["# %s: bits/dim on held-out images (`diffuse nll`)" % args.data,
             "",
             "%s at step %s, %d %s test images (%s), labels: %s; "
             "estimate from %d of T = %d timesteps, seed 0."
             % (res["model"], res["training_step"], args.n, args.data,
                res["selection"], args.labels, est["n_terms"], est["T"]),
             "", "| variance | bits/dim | ± s.e. | decoder (t = 0) | KL (t ≥ 1) |",
             "|---|---|---|---|---|"]
    for name, s in res["estimate"]["variances"].items():
        lines.append("| %s | %.4f | %.4f | %.4f | %.4f |"
                     % (name, s["mean_total_bpd"], s["sem_total_bpd"] or 0,
                        s["mean_decoder_bpd"], s["mean_kl_bpd"]))
    lines.append("")
    lines.append("prior term %.2g bits/dim; %.0f CPU-s."
                 % (res["estimate"]["mean_prior_bpd"], est["cpu_s"]))
    if args.full:
        lines += ["", "Full sum over all %d t on the first %d images "
                  "(same noise), against the estimate on them:"
                  % (res["full"]["T"], args.full), "",
                  "| variance | full | estimate | mean error | max error |",
                  "|---|---|---|---|---|"]
        for name, c in res["full"]["estimate_vs_full"].items():
            lines.append("| %s | %.4f | %.4f | %+.4f | %.4f |"
                         % (name, c["full_mean_bpd"], c["estimate_mean_bpd"],
                            c["mean_error_bpd"], c["max_abs_error_bpd"]))
        lines.append("")
        lines.append("%.0f CPU-s." % res["full"]["cpu_s"])
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
