#!/usr/bin/python3
"""Quality at fixed settings by training step: merges evaluate.py results
into models/eval/<data>-progress.json and rewrites <data>-progress.md.

    tools/eval/progress.py --data fashion models/eval/fashion-target-w0.json \
        models/eval/fashion-target-w1.json

Each result must carry the training_step of the model file it measured
(evaluate.py reads it from the file's metadata); a result for a step and
setting already in the list replaces the old one.  The learning rate of
each step comes from the run's loss.csv (models/training/<data>/).  The table ends with the targets of issue 14
at the latest step (DDIM 50 steps):
  - fashion: accuracy >= 0.95 at w = 1, for each eta measured there;
    FID <= 3x the floor at w = 0 with eta = 0;
  - emoji: accuracy >= 0.80 overall and >= 0.5 in every category at the
    recommended settings (eta = 1, w = 2), from >= 30 samples per
    category; the alpha crispness (share of alpha values neither ~0 nor
    ~255) beside the training images'.
"""
import argparse
import csv
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EVAL = os.path.join(ROOT, "models", "eval")

SETTING_KEYS = ("sampler", "steps", "eta", "guidance", "variance",
                "n_per_class", "seed")
FASHION_ACC, FASHION_FID_RATIO = 0.95, 3.0
EMOJI_ACC, EMOJI_CLASS_ACC, EMOJI_MIN_N = 0.80, 0.5, 30


def lr_by_step(data):
    path = os.path.join(ROOT, "models", "training", data, "loss.csv")
    out = {}
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                out[int(row["step"])] = float(row["lr"])
    return out


def class_names(data):
    """Short class names from the shipped model's metadata."""
    from evaluate import model_metadata
    meta = model_metadata(os.path.join(ROOT, "models", "%s.safetensors" % data))
    names = json.loads(meta.get("class_names", "[]"))
    return [nm.split(" ")[0].split("/")[0] for nm in names]


def merge(old, new):
    def key(r):
        return ((r["training_step"], r.get("run", "")) +
                tuple(r[k] for k in SETTING_KEYS))
    rows = {key(r): r for r in old}
    for r in new:
        if r.get("training_step") is None:
            raise SystemExit("%s: no training_step (made by an older "
                             "evaluate.py?)" % r.get("model"))
        rows[key(r)] = r
    return sorted(rows.values(), key=lambda r: (r["training_step"],
                                                r.get("run", ""), r["eta"],
                                                r["guidance"],
                                                str(r["n_per_class"])))


def fmt(x):
    return ("%.4f" % x).rstrip("0").rstrip(".")


def table(rows, data, lrs):
    first = rows[-1]
    fid_n = first.get("fid_n_per_class")
    lines = [
        "# %s: quality at fixed settings, by training step" % data, "",
        "Exports of the EMA weights at each training step, sampled by "
        "`diffuse sample` (the C engine): %s %d steps (eta as given), %d samples "
        "per class (seed %d + 1000 c), judged by "
        "tools/eval/classifiers/%s.safetensors (accuracy %.3f on the real "
        "reference set).  FID: Frechet distance of the classifier's "
        "penultimate features against as many held-out real images; floor: "
        "the same between two disjoint real sets = **%.2f**%s.  Made with "
        "`tools/eval/evaluate.py`, merged by `tools/eval/progress.py`.  "
        "Rows are for the latest row's sample count unless the n column "
        "says otherwise."
        % (first["sampler"].upper(), first["steps"], first["n_per_class"], first["seed"], data,
           first["real_accuracy"], first["fid_floor"],
           " (FID from the first %d samples of each class against %d real "
           "images per class)" % (fid_n, fid_n) if fid_n else ""), "",
        "| step | lr at that step | n | eta | guidance w | accuracy | FID | "
        "FID / floor | per-class accuracy (%s) |%s"
        % (", ".join(class_names(data)[:len(first["per_class_accuracy"])]),
           " alpha mid |" if data == "emoji" else ""),
        "|---|---|---|---|---|---|---|---|---|%s"
        % ("---|" if data == "emoji" else "")]
    for r in rows:
        # a row of another run (a branch of training that was not shipped
        # and not continued) names it and carries its own lr
        lr = r["lr"] if r.get("run") else lrs.get(r["training_step"])
        lines.append("| %s | %s | %s | %s | %s | %.3f | %.1f | %.1f | %s |%s" % (
            "%d (%s)" % (r["training_step"], r["run"]) if r.get("run")
            else "%d" % r["training_step"], "%g" % lr if lr is not None else "?",
            r["n_per_class"], fmt(r["eta"]), fmt(r["guidance"]),
            r["accuracy"], r["fid"], r["fid"] / r["fid_floor"],
            " ".join("%.2f" % a for a in r["per_class_accuracy"]),
            (" %.3f (real %.3f) |" % (r["alpha_mid_fraction"],
                                      r["alpha_mid_fraction_real"])
             if "alpha_mid_fraction" in r else " |")
            if data == "emoji" else ""))
    # the targets: at the latest step of the main line (rows of no run)
    rows = [r for r in rows if not r.get("run")]
    if data == "emoji":
        last = rows[-1]["training_step"]
        at = [r for r in rows if r["training_step"] == last
              and r["eta"] == 1.0 and r["guidance"] == 2.0
              and r["n_per_class"] != "test"
              and int(r["n_per_class"]) >= EMOJI_MIN_N]
        lines.append("")
        if not at:
            lines.append("Targets at step %d (eta = 1, w = 2, >= %d per "
                         "category): not measured." % (last, EMOJI_MIN_N))
        for r in at:
            worst = min(r["per_class_accuracy"])
            lines.append(
                "Targets at step %d, DDIM 50, eta = 1, w = 2, %s per "
                "category: accuracy >= %.2f: %.3f, %s; every category >= "
                "%.1f: lowest %.2f, %s." % (
                    last, r["n_per_class"], EMOJI_ACC, r["accuracy"],
                    "met" if r["accuracy"] >= EMOJI_ACC else "not met",
                    EMOJI_CLASS_ACC, worst,
                    "met" if worst >= EMOJI_CLASS_ACC else "not met"))
    if data == "fashion":
        last = rows[-1]["training_step"]
        etas = sorted({r["eta"] for r in rows if r["training_step"] == last})
        lines.append("")
        for eta in etas:
            at = {r["guidance"]: r for r in rows
                  if r["training_step"] == last and r["eta"] == eta}
            acc = at.get(1.0)
            fid = at.get(0.0)
            line = ("Targets at step %d, DDIM 50 with eta %s: accuracy "
                    ">= %.2f at w = 1: %s" % (
                        last, fmt(eta), FASHION_ACC,
                        ("%.3f, %s" % (acc["accuracy"], "met"
                                       if acc["accuracy"] >= FASHION_ACC
                                       else "not met"))
                        if acc else "not measured"))
            if eta == 0.0:
                line += ("; FID <= %gx floor at w = 0: %s" % (
                    FASHION_FID_RATIO,
                    ("%.1fx, %s" % (fid["fid"] / fid["fid_floor"], "met"
                                    if fid["fid"] <= FASHION_FID_RATIO
                                    * fid["fid_floor"] else "not met"))
                    if fid else "not measured"))
            elif fid:
                line += " (FID at w = 0: %.1fx the floor)" % (
                    fid["fid"] / fid["fid_floor"])
            lines.append(line + ".")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, choices=("fashion", "emoji"))
    ap.add_argument("results", nargs="*", help="evaluate.py --json files")
    args = ap.parse_args()
    path = os.path.join(EVAL, "%s-progress.json" % args.data)
    old = []
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    new = []
    for p in args.results:
        with open(p) as f:
            new.append(json.load(f))
    rows = merge(old, new)
    if not rows:
        raise SystemExit("no results")
    with open(path + ".tmp", "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    md = os.path.join(EVAL, "%s-progress.md" % args.data)
    with open(md, "w") as f:
        f.write(table(rows, args.data, lr_by_step(args.data)))
    print("wrote %s and %s (%d rows)" % (path, md, len(rows)))


if __name__ == "__main__":
    main()
