#!/usr/bin/python3
"""Classifier guidance against classifier-free guidance, through the C engine.

    tools/eval/classifier_sweep.py --model models/fashion.safetensors --data fashion \
        --n-per-class 20 [--eta 1] [--only KINDS] [--lane K/N] [--threads 1]

Rows (DDIM 50 steps, the given eta; tools/eval/evaluate.py's class accuracy
and classifier-feature FID, scored by the separate clean evaluation
classifier tools/eval/classifiers/<data>.safetensors):
  none        no guidance (w = 0, s = 0);
  classifier  scale s in {0.5, 1, 2, 4, 8}, w = 0, with the shipped
              noisy classifier models/<data>-classifier.safetensors
              (`diffuse sample --classifier --classifier-scale`);
  cfg         classifier-free guidance w in {1, 2, 4}, no classifier;
  both        w = 1 together with s = 2.
--only KINDS (comma-separated) and --lane K/N (every N-th of those rows,
from the K-th) sample a part of the rows and write nothing else: lanes
on both cores fill the sample cache.  A run without them then finds every
row cached, scores them all, and writes
models/eval/<data>-classifier-guidance.md and .json (and a plot .png).
"""
import argparse
import json
import os
import time

import evaluate  # tools/eval/evaluate.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(ROOT, "models", "eval")

SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
CFG_W = (1.0, 2.0, 4.0)
BOTH = (1.0, 2.0)  # (w, s)


def rows_for(data, eta, respacing=None, scales=SCALES, both=BOTH):
    clf = "models/%s-classifier.safetensors" % data

    def row(kind, w, s):
        r = {"sampler": "ddim", "steps": 50, "eta": eta, "guidance": w,
             "variance": "auto"}
        if respacing:
            r["respacing"] = respacing
        if s > 0:
            r["classifier"] = clf
            r["classifier_scale"] = s
        return kind, r
    out = [row("none" if s == 0 else "classifier", 0.0, s)
           for s in sorted(set((0.0,) + tuple(scales)))]
    out += [row("cfg", w, 0.0) for w in CFG_W]
    out.append(row("both", *both))
    return out


def fmt_table(rows):
    lines = ["| guidance | classifier scale s | CFG w | accuracy | "
             "balanced acc. | FID | FID / floor |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %g | %g | %.3f | %.3f | %.1f | %.2f |" % (
            r["kind"], r.get("classifier_scale", 0.0), r["guidance"],
            r["accuracy"], r["balanced_accuracy"], r["fid"], r["fid_ratio"]))
    return "\n".join(lines) + "\n"


def plot(rows, path, title):
    try:
        import matplotlib
    except ImportError:     # the tables are the result; the plot is extra
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    base = [r for r in rows if r["kind"] == "none"]
    for kind, label, key, fmt in (
            ("classifier", "classifier guidance (s)", "classifier_scale",
             "s=%g"),
            ("cfg", "classifier-free guidance (w)", "guidance", "w=%g")):
        rs = base + [r for r in rows if r["kind"] == kind]
        ax.plot([r["fid"] for r in rs], [r["accuracy"] for r in rs], "o-",
                label=label)
        for r in rs:
            ax.annotate(fmt % r.get(key, 0.0), (r["fid"], r["accuracy"]),
                        textcoords="offset points", xytext=(4, -10),
                        fontsize=7)
    for r in rows:
        if r["kind"] == "both":
            ax.plot([r["fid"]], [r["accuracy"]], "k*", markersize=10,
                    label="w=%g and s=%g" % (r["guidance"],
                                             r["classifier_scale"]))
    ax.axvline(rows[0]["fid_floor"], color="grey", ls="--",
               label="real-vs-real floor")
    ax.set_xlabel("FID (evaluation classifier features)")
    ax.set_ylabel("class accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    evaluate.add_run_arguments(ap)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--respacing", default=None, metavar="STR",
                    help="guided-diffusion timestep_respacing for every row "
                    "instead of --steps 50 (evenly spread, t = 999 ... 0; "
                    "the engine takes ddim50 for classifier-guided DDIM "
                    "rows: the kept steps 0, 20, ..., 980, without "
                    "t = 999); \"50\" gives the even spacing everywhere; "
                    "writes <data>-classifier-guidance-STR.{md,json}")
    ap.add_argument("--scales", default=None, metavar="S,S,...",
                    help="classifier scales of the classifier rows "
                    "(default %s)" % ",".join("%g" % s for s in SCALES[1:]))
    ap.add_argument("--both", default=None, metavar="W,S",
                    help="the combined row's CFG w and classifier scale s "
                    "(default %g,%g)" % BOTH)
    ap.add_argument("--merge", action="store_true",
                    help="with --cached-only: rows not in the cache keep "
                    "their scores from the existing .json (same model, "
                    "seed and samples per class), instead of being listed "
                    "as not run")
    ap.add_argument("--only", default=None, metavar="KINDS")
    ap.add_argument("--lane", default=None, metavar="K/N")
    ap.add_argument("--cached-only", action="store_true",
                    help="report only the rows whose samples are all in the "
                    "cache (the others are listed as not run)")
    a = ap.parse_args()
    if a.n_per_class != "test":
        a.n_per_class = int(a.n_per_class)
    scales = (tuple(float(v) for v in a.scales.split(",")) if a.scales
              else SCALES)
    both = (tuple(float(v) for v in a.both.split(",")) if a.both
            else BOTH)
    rows = rows_for(a.data, a.eta, a.respacing, scales, both)
    part = bool(a.only or a.lane)
    if a.only:
        rows = [r for r in rows if r[0] in a.only.split(",")]
    if a.lane:
        k, n = (int(v) for v in a.lane.split("/"))
        rows = rows[k - 1::n]
    t0 = time.time()
    out, missing = [], []
    for kind, s in rows:
        if a.cached_only and not all(
                os.path.exists(evaluate.cache_path(
                    a.model, c, a.n_per_class, s, a.seed + 1000 * c))
                for c in range(len(json.loads(evaluate.model_metadata(
                    a.model)["class_names"])) - 1)):
            missing.append((kind, s))
            continue
        r = evaluate.evaluate(a.model, a.data, s, a.n_per_class, a.seed,
                              a.threads, a.diffuse)
        r["kind"] = kind
        out.append(r)
        print("%s: w %g s %g: acc %.3f fid %.1f (floor %.1f), %.0f s"
              % (kind, s["guidance"], s.get("classifier_scale", 0.0),
                 r["accuracy"], r["fid"], r["fid_floor"],
                 r["generate_seconds"]), flush=True)
    if part:
        return
    base = os.path.join(OUT_DIR, "%s-classifier-guidance%s"
                        % (a.data, "-" + a.respacing if a.respacing else ""))
    merged = []
    if a.merge and os.path.exists(base + ".json"):
        with open(base + ".json") as f:
            old = json.load(f)
        if old["seed"] != a.seed or old["model"] != os.path.relpath(
                os.path.abspath(a.model), ROOT):
            raise SystemExit("--merge: %s.json is for another model or seed"
                             % base)
        key = lambda k, s: (k, s["guidance"],  # noqa: E731
                            s.get("classifier_scale", 0.0))
        have = {key(r["kind"], r): r for r in old["rows"]}
        still = []
        for k, s in missing:
            r = have.get(key(k, s))
            if r is None:
                still.append((k, s))
                continue
            r = dict(r, counts=old["samples_per_class"],
                     fid_floor=old["fid_floor"])
            merged.append("%s w=%g s=%g" % key(k, s))
            out.append(r)
        missing = still
        order = [key(k, s) for k, s in rows]
        out.sort(key=lambda r: order.index(key(r["kind"], r)))
    md = evaluate.model_metadata(a.model)
    clf_md = evaluate.model_metadata(os.path.join(
        ROOT, "models", "%s-classifier.safetensors" % a.data))
    counts = out[0]["counts"]
    steps_text = ("respacing %s" % a.respacing if a.respacing
                  else "DDIM 50 steps")
    res = {"model": os.path.relpath(os.path.abspath(a.model), ROOT),
           "training_step": md.get("training_step"),
           "classifier": "models/%s-classifier.safetensors" % a.data,
           "classifier_training_step": clf_md.get("training_step"),
           "sampler": "ddim", "steps": 50, "eta": a.eta,
           "respacing": a.respacing,
           "samples_per_class": counts, "seed": a.seed,
           "fid_floor": out[0]["fid_floor"],
           "not_run": [{"kind": k, "guidance": s["guidance"],
                        "classifier_scale": s.get("classifier_scale", 0.0)}
                       for k, s in missing],
           "rows": [{k: r[k] for k in (
               "kind", "guidance", "classifier_scale", "accuracy",
               "balanced_accuracy", "per_class_accuracy", "fid", "fid_ratio",
               "finite", "generate_seconds") if k in r} for r in out]}
    with open(base + ".json.tmp", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(base + ".json.tmp", base + ".json")
    title = "%s: %s, eta %g, %d samples/class" % (a.data, steps_text, a.eta,
                                                  counts[0])
    plotted = plot(out, base + ".png", title)
    with open(base + ".md", "w") as f:
        f.write("# %s: classifier guidance against classifier-free "
                "guidance\n\n" % a.data)
        f.write("Model `%s` (training step %s) guided by the noisy "
                "classifier `models/%s-classifier.safetensors` (training "
                "step %s), %s, eta %g, %s samples per class from "
                "`diffuse sample` (the C engine), seed %d.  Scored by the "
                "separate clean evaluation classifier tools/eval/classifiers/"
                "%s.safetensors: class accuracy, and FID of its penultimate "
                "features against %d held-out real images (real-vs-real "
                "floor at this size **%.1f**).\n\n"
                % (res["model"], res["training_step"], a.data,
                   res["classifier_training_step"], steps_text, a.eta,
                   counts[0],
                   a.seed, a.data, sum(counts), res["fid_floor"]))
        f.write(fmt_table(out))
        if missing:
            f.write("\nNot run (the session's time ran out): %s.\n" % ", ".join(
                "%s w=%g s=%g" % (k, s["guidance"],
                                  s.get("classifier_scale", 0.0))
                for k, s in missing))
        if merged:
            f.write("\nScores kept from the earlier %s.json (--merge; "
                    "the same samples): %s.\n"
                    % (os.path.basename(base), ", ".join(merged)))
        f.write("\n%sMade by "
                "`tools/eval/classifier_sweep.py --model %s --data %s "
                "--n-per-class %s --eta %g%s` (the samples in two lanes "
                "first); this scoring run took %.0f s.\n"
                % ("Plot: %s.png.  " % os.path.basename(base)
                   if plotted else "", res["model"], a.data, a.n_per_class, a.eta,
                   "".join(" --%s %s" % (k, v) for k, v in (
                       ("respacing", a.respacing), ("scales", a.scales),
                       ("both", a.both)) if v)
                   + (" --cached-only --merge" if merged else ""),
                   time.time() - t0))
    print("wrote %s.md, .json%s" % (base, ", .png" if plotted else ""))


if __name__ == "__main__":
    main()
