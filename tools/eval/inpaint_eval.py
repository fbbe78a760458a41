#!/usr/bin/python3
"""Inpainting, measured: on held-out Fashion-MNIST images, regenerate a
region (the right half, or a centre square) given the rest, through the C
engine (`diffuse inpaint`), and report how often the evaluation classifier
(tools/eval/classifiers) still gives the image's true label.

Compared, on the same images and regions:
  original      the held-out image itself (the classifier's own accuracy)
  noise         the region filled with noise (what the model is given:
                the region's true pixels are never seen by any method)
  img2img       `diffuse img2img` of the noise-filled image (the plug-in's
                old way: regenerate the area, then blend by the selection),
                the region pasted into the original
  inpaint       `diffuse inpaint` with the region as the mask
each with the class known (--class = the true label) and with the null
class (--class none: the model must infer it from the kept pixels).
Also the mean squared error to the original inside the region.

Images: the first n of numpy default_rng(0).permutation of the test split
(as tools/eval/likelihood.py); seed 1000 + i for image i, the same for
every method.  Writes OUT.json and OUT.md, and a picture (original /
masked / inpainted) with --picture.

    /usr/bin/python3 tools/eval/inpaint_eval.py --n 50 \\
        --out models/eval/fashion-inpaint --picture docs/inpaint.png
"""
import argparse
import concurrent.futures
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

from evaluate import find_diffuse, load_classifier, predict  # noqa: E402
from evaluate import training_step  # noqa: E402

S = 32
REGIONS = {
    "right half": (0, S, S // 2, S),          # rows y0:y1, cols x0:x1
    "centre square": (8, 24, 8, 24),
}
METHODS = ("original", "noise", "img2img", "inpaint")


def held_out(data, n, seed=0):
    d = np.load(os.path.join(ROOT, "tools", "train", "cache", data + ".npz"))
    x, y = d["test_x"], d["test_y"]
    order = np.random.default_rng(seed).permutation(len(x))[:n]
    return (x[order].astype(np.float32) / 127.5 - 1.0), y[order], order, \
        [str(s) for s in d["class_names"]]


def region_mask(name):
    m = np.zeros((S, S), np.float32)
    y0, y1, x0, x1 = REGIONS[name]
    m[y0:y1, x0:x1] = 1.0
    return m


def save_png(path, planes):
    """[C, H, W] in [-1, 1] (C = 1) as an 8-bit grey PNG."""
    from PIL import Image
    a = np.clip(np.rint((planes[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
    Image.fromarray(a, "L").save(path)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise SystemExit("diffuse failed (%d): %s\n%s"
                         % (r.returncode, " ".join(cmd), r.stderr.strip()))


def one(diffuse, model, args, tmp, tag, x_in, mask_png, label, seed, method):
    """One run through the CLI; returns the image [1, S, S]."""
    inp = os.path.join(tmp, tag + ".in.npy")
    out = os.path.join(tmp, tag + ".out.npy")
    np.save(inp, x_in[None])
    common = ["--model", model, "--input", inp, "--class", label,
              "--seed", str(seed), "--steps", str(args.steps),
              "--eta", repr(args.eta), "--threads", "1", "--quiet",
              "--precision", "fp32",
              "--out-npy", out]
    if method == "inpaint":
        cmd = ["nice", diffuse, "inpaint", "--mask", mask_png] + common
    else:
        cmd = ["nice", diffuse, "img2img", "--strength",
               repr(args.strength)] + common
    run(cmd)
    return np.load(out)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models",
                                                    "fashion.safetensors"))
    ap.add_argument("--data", default="fashion")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--strength", type=float, default=0.8,
                    help="img2img's strength")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--diffuse", default=None)
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    ap.add_argument("--picture", default=None, help="a PNG grid")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    diffuse = find_diffuse(args.diffuse)
    clf = load_classifier(args.data)
    x, y, order, names = held_out(args.data, args.n)
    n = len(x)
    rng = np.random.default_rng(12345)
    t0 = time.time()
    cpu0 = os.times()
    results = {}
    images = {}
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for rname in REGIONS:
            m = region_mask(rname)
            mask_png = os.path.join(tmp, rname.replace(" ", "-") + ".png")
            save_png(mask_png, (m * 2.0 - 1.0)[None])
            noise = np.clip(rng.standard_normal(x.shape), -1, 1) \
                .astype(np.float32)
            masked = (x * (1 - m) + noise * m).astype(np.float32)
            sets = {("original", "-"): x, ("noise", "-"): masked}
            jobs = {}
            for method in ("img2img", "inpaint"):
                for cls in ("known", "null"):
                    for i in range(n):
                        label = str(int(y[i])) if cls == "known" else "none"
                        tag = "%s-%s-%s-%d" % (rname[:5], method, cls, i)
                        jobs[(method, cls, i)] = pool.submit(
                            one, diffuse, args.model, args, tmp, tag,
                            masked[i], mask_png, label, 1000 + i, method)
            for method in ("img2img", "inpaint"):
                for cls in ("known", "null"):
                    out = np.stack([jobs[(method, cls, i)].result()
                                    for i in range(n)])
                    if method == "img2img":
                        # the plug-in's old way: the region blended in
                        out = x * (1 - m) + out * m
                    else:
                        # inpaint keeps every unmasked pixel itself
                        assert np.array_equal(out * (1 - m), x * (1 - m))
                    sets[(method, cls)] = out.astype(np.float32)
            res = {}
            for (method, cls), imgs in sets.items():
                pred, _ = predict(clf, imgs)
                inside = ((imgs - x) ** 2 * m).sum((1, 2, 3)) / m.sum()
                res["%s/%s" % (method, cls)] = {
                    "agreement": float((pred == y).mean()),
                    "agree_count": int((pred == y).sum()),
                    "region_mse": float(inside.mean())}
            results[rname] = res
            images[rname] = sets
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user
           + cpu1.children_system - cpu0.children_system)
    meta = {"model": os.path.relpath(args.model, ROOT),
            "training_step": training_step(args.model),
            "data": args.data, "n": n,
            "images": "first %d of numpy default_rng(0).permutation of the "
                      "test split" % n,
            "sampler": "ddim", "steps": args.steps, "eta": args.eta,
            "precision": "fp32",
            "img2img_strength": args.strength,
            "seeds": "1000 + i", "regions": {k: list(v) for k, v in
                                             REGIONS.items()},
            "wall_s": round(time.time() - t0, 1), "cpu_s": round(cpu, 1)}
    report = {"meta": meta, "results": results}
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump(report, f, indent=1)
        with open(args.out + ".md", "w") as f:
            f.write(markdown(report))
    if args.picture:
        picture(args.picture, x, images, n)


def markdown(report):
    meta, res = report["meta"], report["results"]
    lines = [
        "# %s: inpainting, measured (`diffuse inpaint`)" % meta["data"], "",
        "%s at step %s, %d held-out images (%s); DDIM, %d steps, eta %g, "
        "seed 1000 + i.  The region is the right half (x 16..31) or the "
        "centre square (16 x 16 at 8, 8) of the 32 x 32 image; no method "
        "sees its true pixels (img2img gets them as noise, strength %g, "
        "then the region is pasted into the original).  Agreement: how "
        "often the evaluation classifier (tools/eval/classifiers) gives the "
        "true label; MSE: mean squared error to the original inside the "
        "region ([-1, 1] scale)." % (
            meta["model"], meta["training_step"], meta["n"], meta["images"],
            meta["steps"], meta["eta"], meta["img2img_strength"]), "",
        "| region | original | noise | img2img, class known | img2img, "
        "null class | inpaint, class known | inpaint, null class |",
        "|---|---|---|---|---|---|---|"]
    keys = ["original/-", "noise/-", "img2img/known", "img2img/null",
            "inpaint/known", "inpaint/null"]
    for rname, r in res.items():
        lines.append("| %s | " % rname + " | ".join(
            "%.0f%% (MSE %.3f)" % (100 * r[k]["agreement"], r[k]["region_mse"])
            if k != "original/-" else "%.0f%%" % (100 * r[k]["agreement"])
            for k in keys) + " |")
    lines += ["", "%.0f CPU-s, %.0f s wall." % (meta["cpu_s"], meta["wall_s"]),
              ""]
    return "\n".join(lines)


def picture(path, x, images, n, k=6, scale=3):
    """Columns: k images per region; rows: original, masked (noise),
    inpainted (class known)."""
    from PIL import Image
    cols = []
    per = min(k, n) // len(images)
    for r, (rname, sets) in enumerate(images.items()):
        for i in range(r * per, (r + 1) * per):
            col = [x[i], sets[("noise", "-")][i], sets[("inpaint", "known")][i]]
            cols.append(np.concatenate([np.pad(c[0], 1, constant_values=1.0)
                                        for c in col], 0))
    grid = np.concatenate(cols, 1)
    a = np.clip(np.rint((grid + 1) * 127.5), 0, 255).astype(np.uint8)
    img = Image.fromarray(a, "L").resize((a.shape[1] * scale,
                                          a.shape[0] * scale), Image.NEAREST)
    img.save(path)


if __name__ == "__main__":
    main()
