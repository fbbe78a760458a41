#!/usr/bin/python3
"""Sample-quality sweeps through the C engine; tables and plots in models/eval/.

    tools/eval/sweeps.py --model models/fashion.safetensors --data fashion \
        [--n-per-class 100] [--only guidance,steps_eta,variance,grid,grid_eta1]

Sweeps (each row: tools/eval/evaluate.py's class accuracy and classifier-
feature FID, with the real-vs-real floor at the same sample size):
  guidance   DDIM 50 steps, eta 0, w in {0, 0.5, 1, 2, 4}: the accuracy /
             FID trade-off of classifier-free guidance;
  steps_eta  DDIM, w = 0, S in {10, 20, 50, 100} x eta in {0, 0.5, 1}
             (the DDIM paper's table 1 on our model);
  variance   DDPM, w = 0, S in {10, 20, 50}: learned variance against the
             fixed small (beta~) and large (beta) variances (improved DDPM's
             few-step claim);
  grid       a sample grid, one row per class (w = 1, DDIM 50 steps, eta
             0): <data>-samples.png;
  grid_eta1  the same with eta = 1 and w = 2 (stochastic sampling and
             stronger guidance, better on undertrained models):
             <data>-samples-eta1-w2.png.
Writes models/eval/<data>-<sweep>.md / .png and <data>-results.json.
"""
import argparse
import json
import os
import time

import numpy as np

import evaluate  # tools/eval/evaluate.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

OUT_DIR = os.path.join(ROOT, "models", "eval")


def ddim(steps=50, eta=0.0, guidance=0.0):
    return {"sampler": "ddim", "steps": steps, "eta": eta,
            "guidance": guidance, "variance": "auto"}


def ddpm(steps, variance, guidance=0.0):
    return {"sampler": "ddpm", "steps": steps, "eta": 1.0,
            "guidance": guidance, "variance": variance}


SWEEPS = {
    "guidance": [ddim(50, 0.0, w) for w in (0.0, 0.5, 1.0, 2.0, 4.0)],
    "steps_eta": [ddim(s, e, 0.0) for e in (0.0, 0.5, 1.0)
                  for s in (10, 20, 50, 100)],
    "variance": [ddpm(s, v) for v in ("learned", "fixed-small", "fixed-large")
                 for s in (10, 20, 50)],
}

GRIDS = {  # sample grids: settings and the PNG's name after <data>
    "grid": (ddim(50, 0.0, 1.0), "-samples.png"),
    "grid_eta1": (ddim(50, 1.0, 2.0), "-samples-eta1-w2.png"),
}


def header(args, md, row):
    counts = row["counts"]
    per = ("%d samples per class" % counts[0] if len(set(counts)) == 1
           else "samples per class as in the held-out split (%s)"
           % ", ".join(map(str, counts)))
    return ("Model `%s` (training step %s), %s from `diffuse sample` (the C "
            "engine), seed %d.  Classifier: tools/eval/classifiers/"
            "%s.safetensors (accuracy on the real reference set %.3f).  FID "
            "is the Frechet distance of the classifier's penultimate features "
            "against %d held-out real images; the real-vs-real floor at this "
            "size is **%.3f**%s.\n"
            % (os.path.relpath(args.model, ROOT), md.get("training_step", "?"),
               per, args.seed, args.data, row["real_accuracy"], sum(counts),
               row["fid_floor"],
               (" (its second real set has %d training images)"
                % row["floor_b_from_train"]) if row["floor_b_from_train"]
               else ""))


def table(rows, cols):
    out = ["| " + " | ".join(c for c, _ in cols) + " |",
           "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    return "\n".join(out) + "\n"


COLS = [("sampler", lambda r: r["sampler"]),
        ("steps", lambda r: str(r["steps"])),
        ("eta", lambda r: "%g" % r["eta"]),
        ("variance", lambda r: r["variance"]),
        ("guidance w", lambda r: "%g" % r["guidance"]),
        ("accuracy", lambda r: "%.3f" % r["accuracy"]),
        ("balanced acc.", lambda r: "%.3f" % r["balanced_accuracy"]),
        ("FID", lambda r: "%.3f" % r["fid"]),
        ("FID / floor", lambda r: "%.2f" % r["fid_ratio"]),
        ("seconds", lambda r: "%.0f" % r["generate_seconds"])]


def plot_guidance(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([r["fid"] for r in rows], [r["accuracy"] for r in rows], "o-")
    for r in rows:
        ax.annotate("w=%g" % r["guidance"], (r["fid"], r["accuracy"]),
                    textcoords="offset points", xytext=(5, -10))
    ax.axvline(rows[0]["fid_floor"], color="grey", ls="--",
               label="real-vs-real floor")
    ax.set_xlabel("FID (classifier features)")
    ax.set_ylabel("class accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_lines(rows, key, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    groups = sorted({r[key] for r in rows}, key=str)
    for g in groups:
        rs = [r for r in rows if r[key] == g]
        for ax, m in zip(axes, ("fid", "accuracy")):
            ax.plot([r["steps"] for r in rs], [r[m] for r in rs], "o-",
                    label="%s = %s" % (key, g))
    axes[0].axhline(rows[0]["fid_floor"], color="grey", ls="--",
                    label="real-vs-real floor")
    for ax, m in zip(axes, ("FID (classifier features)", "class accuracy")):
        ax.set_xscale("log")
        ax.set_xticks([10, 20, 50, 100])
        ax.set_xticklabels(["10", "20", "50", "100"])
        ax.set_xlabel("reverse steps S")
        ax.set_ylabel(m)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_grid(x, n_classes, n_per_class, names, path, per_row=10):
    """x [n_classes * n_per_class, C, H, W] in [-1, 1] -> PNG, one row per
    class (RGBA composited over a light checkerboard)."""
    from PIL import Image, ImageDraw
    c, h, w = x.shape[1:]
    k = min(per_row, n_per_class)
    label_w = 110
    img = np.full((n_classes * (h + 2), label_w + k * (w + 2), 3), 255,
                  np.float64)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // 4 + xx // 4) % 2)[..., None], 0.8, 0.95)
    for ci in range(n_classes):
        for j in range(k):
            s = (x[ci * n_per_class + j].transpose(1, 2, 0) + 1) / 2
            s = np.clip(s, 0, 1)
            if c == 1:
                rgb = np.repeat(s, 3, axis=2)
            elif c == 2:
                rgb = s[..., :1] * s[..., 1:] + checker * (1 - s[..., 1:])
                rgb = np.repeat(rgb, 3, axis=2)
            elif c == 3:
                rgb = s
            else:
                a = s[..., 3:]
                rgb = s[..., :3] * a + checker * (1 - a)
            y0, x0 = ci * (h + 2) + 1, label_w + j * (w + 2) + 1
            img[y0:y0 + h, x0:x0 + w] = rgb * 255
    im = Image.fromarray(img.astype(np.uint8))
    im = im.resize((im.width * 2, im.height * 2), Image.NEAREST)
    d = ImageDraw.Draw(im)
    for ci in range(n_classes):
        d.text((4, ci * (h + 2) * 2 + h - 6), names[ci][:16], fill=(0, 0, 0))
    im.save(path)


def save_result(results_path, sweep, entry):
    """Merges one sweep into <data>-results.json.  Sweeps of one data set
    may run in parallel processes (tools/eval/run_all.sh), so the file is
    re-read and replaced under an exclusive lock."""
    import fcntl
    with open(results_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        all_results = {}
        if os.path.exists(results_path):
            with open(results_path) as f:
                all_results = json.load(f)
        all_results[sweep] = entry
        with open(results_path + ".tmp", "w") as f:
            json.dump(all_results, f, indent=1)
        os.replace(results_path + ".tmp", results_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    evaluate.add_run_arguments(ap)
    ap.add_argument("--only", default="guidance,steps_eta,variance,grid,"
                    "grid_eta1")
    args = ap.parse_args()
    args.model = os.path.abspath(args.model)
    if args.n_per_class != "test":
        args.n_per_class = int(args.n_per_class)
    os.makedirs(OUT_DIR, exist_ok=True)
    md = evaluate.model_metadata(args.model)
    names = json.loads(md["class_names"])
    results_path = os.path.join(OUT_DIR, args.data + "-results.json")
    for sweep in args.only.split(","):
        t0 = time.time()
        if sweep in GRIDS:
            settings, suffix = GRIDS[sweep]
            res, x = evaluate.evaluate(args.model, args.data, settings,
                                       args.n_per_class, args.seed,
                                       args.threads, args.diffuse,
                                       return_samples=True)
            path = os.path.join(OUT_DIR, args.data + suffix)
            counts = res["counts"]
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            k = min(10, min(counts))
            x = np.concatenate([x[s:s + k] for s in starts])
            save_grid(x, len(names) - 1, k, names, path)
            save_result(results_path, sweep,
                        {"training_step": md.get("training_step"),
                         "rows": [res]})
            print("wrote %s (%s: acc %.3f fid %.3f)" % (
                path, json.dumps(settings), res["accuracy"], res["fid"]),
                flush=True)
            continue
        if sweep not in SWEEPS:
            raise SystemExit("unknown sweep %r" % sweep)
        rows = []
        for s in SWEEPS[sweep]:
            r = evaluate.evaluate(args.model, args.data, s, args.n_per_class,
                                  args.seed, args.threads, args.diffuse)
            rows.append(r)
            print("%s: %s acc %.3f fid %.3f (floor %.3f)"
                  % (sweep, json.dumps(s), r["accuracy"], r["fid"],
                     r["fid_floor"]), flush=True)
        save_result(results_path, sweep,
                    {"training_step": md.get("training_step"), "rows": rows})
        title = "%s, step %s, %s/class" % (args.data,
                                          md.get("training_step", "?"),
                                          args.n_per_class)
        png = os.path.join(OUT_DIR, "%s-%s.png" % (args.data, sweep))
        if sweep == "guidance":
            plot_guidance(rows, png, title)
        elif sweep == "steps_eta":
            plot_lines(rows, "eta", png, title)
        else:
            plot_lines(rows, "variance", png, title)
        with open(os.path.join(OUT_DIR, "%s-%s.md" % (args.data, sweep)),
                  "w") as f:
            f.write("# %s: %s sweep\n\n" % (args.data, sweep))
            f.write(header(args, md, rows[0]) + "\n")
            f.write(table(rows, COLS))
            f.write("\nPlot: %s-%s.png.  Made by `tools/eval/sweeps.py "
                    "--model %s --data %s --n-per-class %s --only %s` in "
                    "%.0f s.\n" % (args.data, sweep,
                                   os.path.relpath(args.model, ROOT),
                                   args.data, args.n_per_class, sweep,
                                   time.time() - t0))
        print("wrote %s" % png, flush=True)


if __name__ == "__main__":
    main()
