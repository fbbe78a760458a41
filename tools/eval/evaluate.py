#!/usr/bin/python3
"""Measure a model's samples made by the C engine (`diffuse sample`).

    tools/eval/evaluate.py --model models/fashion.safetensors --data fashion \
        --n-per-class 100 --sampler ddim --steps 50 --eta 0 --guidance 1

For every real class c the CLI makes n samples (one batch, seed
seed + 1000 c; --n-per-class test: as many as the held-out split has); the classifier from tools/eval/train_classifier.py then
gives
  - class accuracy: share of samples classified as the class they were
    generated for (and the per-class shares);
  - FID in the classifier's 256-d penultimate feature space:
    FD = |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2))
    (Heusel et al. 2017) against a set A of held-out real images with the
    same count per class;
  - the floor: the same FD between set A and a disjoint real set B of the
    same size (from the test split while it lasts, then from the training
    split), i.e. what a perfect sampler would score at this sample size;
    with --fid-n-per-class K (for emoji, whose held-out split has only 8
    images in its smallest class) FID and floor use the first K samples
    of each class and K real images per class, the accuracies all n;
  - for RGBA data, the alpha crispness: the fraction of alpha values that
    are neither ~0 nor ~255 (strictly between 13 and 242 of 255) in the
    samples and in the training images.
Samples are cached in tools/eval/cache/ by (model file, settings), so the
sweeps can share them.  Settings may name a classifier for classifier
guidance ("classifier": a path relative to the source root, and
"classifier_scale"; tools/eval/classifier_sweep.py).  Prints one JSON
object (also --json FILE).
"""
import argparse
import hashlib
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

DEFAULT_DIFFUSE = [os.path.join(ROOT, "build-cli", "cli", "diffuse"),
                   os.path.join(ROOT, "build", "cli", "diffuse")]
CACHE = os.path.join(HERE, "cache")


def find_diffuse(path=None):
    for p in ([path] if path else []) + DEFAULT_DIFFUSE:
        if p and os.access(p, os.X_OK):
            return p
    raise SystemExit("no diffuse binary found; build it (meson setup build "
                     "&& ninja -C build) or pass --diffuse PATH")


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def model_metadata(model):
    """A safetensors file's __metadata__ (strings), read from its header
    alone."""
    with open(model, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__") or {}


def training_step(model):
    """The training_step of a model file's metadata (tools/train/export.py),
    or None for files without one (converted OpenAI checkpoints)."""
    step = model_metadata(model).get("training_step")
    return int(step) if step is not None else None


PAUSE_FILE = [None]  # --pause-file: wait before each CLI run while it exists


def wait_while_paused():
    path = PAUSE_FILE[0]
    while path and os.path.exists(path):
        time.sleep(2.0)


def cache_path(model, cls, n, ks, seed):
    """Where generate() keeps the samples of these arguments (ks: the
    settings that make the key); a classifier's file contents are part
    of it."""
    parts = [file_digest(model), cls, n, ks, seed]
    if ks.get("classifier"):
        parts.append(file_digest(os.path.join(ROOT, ks["classifier"])))
        # the engine spaces classifier-guided DDIM's steps as "ddimN"
        # (issue 11; before, evenly to t = T-1): samples cached before that
        # must not stand for these settings
        if (float(ks.get("classifier_scale", 1)) > 0
                and ks.get("sampler", "ddim") == "ddim"
                and not ks.get("respacing")):
            parts.append("steps-as-ddimN")
    key = json.dumps(parts, sort_keys=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:24] + ".npy"
    return os.path.join(CACHE, name)


def generate(diffuse, model, cls, n, s, threads, seed):
    """Runs `diffuse sample` once; returns float32 [n, C, H, W].
    s["precision"] (default fp32, whatever the machine: the CLI's own
    default, auto, depends on it) is part of the cache key unless fp32.
    With s["preset_file"] the CLI applies that preset file itself (the
    cache key then holds the preset's values, s["preset"], not its path)."""
    precision = s.get("precision", "fp32")
    ks = {k: v for k, v in s.items()
          if k != "preset_file" and (k != "precision" or v != "fp32")}
    cached = cache_path(model, cls, n, ks, seed)
    if os.path.exists(cached):
        return np.load(cached)
    wait_while_paused()
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "x.npy")
        if "preset_file" in s:
            what = ["--preset", s["preset_file"]]
        else:
            # s["respacing"] (guided-diffusion's timestep_respacing, e.g.
            # "ddim50") replaces the evenly spread s["steps"]
            what = (["--respacing", s["respacing"]] if s.get("respacing")
                    else ["--steps", str(s["steps"])])
            what += ["--eta", repr(float(s["eta"])),
                    "--guidance", repr(float(s["guidance"])),
                    "--sampler", s["sampler"], "--variance", s["variance"]]
        cmd = [diffuse, "sample", "--model", model, "--class", str(cls)] + \
            what + ["--seed", str(seed), "--count", str(n), "--quiet",
                    "--precision", precision,
                    "--out", os.path.join(tmp, "x.png"), "--out-npy", npy]
        if threads:
            cmd += ["--threads", str(threads)]
        if s.get("classifier"):
            cmd += ["--classifier", os.path.join(ROOT, s["classifier"]),
                    "--classifier-scale", repr(float(s["classifier_scale"]))]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            raise SystemExit("diffuse failed (%d): %s\n%s"
                             % (r.returncode, " ".join(cmd), r.stderr.strip()))
        x = np.load(npy).astype(np.float32)
    if x.shape[0] != n:
        raise SystemExit("diffuse gave %d samples, asked for %d"
                         % (x.shape[0], n))
    np.save(cached + ".tmp.npy", x)
    os.replace(cached + ".tmp.npy", cached)
    return x


def frechet_distance(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1 = np.cov(f1, rowvar=False)
    s2 = np.cov(f2, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(s1.shape[0])
        covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def class_counts(data, n_per_class):
    """n_per_class: an int (that many per class, class-balanced) or "test"
    (the held-out split's own class counts; for small sets like emoji)."""
    nc = len(data["class_names"])
    if n_per_class == "test":
        return np.bincount(data["test_y"], minlength=nc)
    return np.full(nc, int(n_per_class))


def real_sets(data, counts, seed=12345):
    """Disjoint real sets with counts[c] images of class c: A from the
    held-out test split, B from the test images left over, then from the
    training split."""
    rng = np.random.default_rng(seed)
    a_idx, b_x, b_from_train = [], [], 0
    for c, k in enumerate(counts):
        te = rng.permutation(np.flatnonzero(data["test_y"] == c))
        tr = rng.permutation(np.flatnonzero(data["train_y"] == c))
        if len(te) < k:
            raise SystemExit("class %d has only %d held-out images, fewer "
                             "than %d" % (c, len(te), k))
        a_idx.extend(te[:k])
        rest = te[k:2 * k]
        need = k - len(rest)
        b_x.append(data["test_x"][rest])
        if need:
            b_x.append(data["train_x"][tr[:need]])
            b_from_train += need
    a = data["test_x"][np.array(a_idx)].astype(np.float32) / 127.5 - 1.0
    b = np.concatenate(b_x).astype(np.float32) / 127.5 - 1.0
    return a, b, b_from_train


_REF_CACHE = {}


def reference(data_name, n_per_class, clf):
    key = (data_name, n_per_class)
    if key not in _REF_CACHE:
        import classifier  # noqa: F401
        data = np.load(os.path.join(ROOT, "tools", "train", "cache",
                                    data_name + ".npz"))
        nc = len(data["class_names"])
        counts = class_counts(data, n_per_class)
        a, b, b_train = real_sets(data, counts)
        la, fa = predict(clf, a)
        lb, fb = predict(clf, b)
        ya = np.repeat(np.arange(nc), counts)
        _REF_CACHE[key] = {
            "feat_a": fa, "floor": frechet_distance(fa, fb),
            "real_accuracy": float((la == ya).mean()),
            "floor_b_from_train": int(b_train), "n_classes": nc,
            "counts": [int(k) for k in counts],
            "class_names": [str(s) for s in data["class_names"]]}
    return _REF_CACHE[key]


def predict(clf, x):
    import classifier
    return classifier.predict(clf, x)


_CLF = {}
_ALPHA_REAL = {}


def real_alpha_mid_fraction(data_name):
    if data_name not in _ALPHA_REAL:
        data = np.load(os.path.join(ROOT, "tools", "train", "cache",
                                    data_name + ".npz"))
        _ALPHA_REAL[data_name] = alpha_mid_fraction(
            data["train_x"].astype(np.float32) / 127.5 - 1.0)
    return _ALPHA_REAL[data_name]


def load_classifier(data_name, path=None):
    import classifier
    path = path or os.path.join(HERE, "classifiers", data_name + ".safetensors")
    if path not in _CLF:
        if not os.path.exists(path):
            raise SystemExit("no classifier %s; run tools/eval/"
                             "train_classifier.py %s" % (path, data_name))
        _CLF[path] = classifier.load(path)[0]
    return _CLF[path]


ALPHA_LO, ALPHA_HI = 13.0 / 255.0, 242.0 / 255.0


def alpha_mid_fraction(x):
    """x: float [N, 4, H, W] in [-1, 1]: the fraction of alpha values that
    are neither ~transparent nor ~opaque."""
    a = (np.clip(x[:, 3], -1.0, 1.0) + 1.0) / 2.0
    return float(((a > ALPHA_LO) & (a < ALPHA_HI)).mean())


def evaluate(model, data_name, settings, n_per_class, seed=0, threads=None,
             diffuse=None, classifier_path=None, return_samples=False,
             fid_n_per_class=None):
    import torch
    torch.set_num_threads(1)
    diffuse = find_diffuse(diffuse)
    clf = load_classifier(data_name, classifier_path)
    ref = reference(data_name, fid_n_per_class or n_per_class, clf)
    nc = ref["n_classes"]
    counts = ([int(n_per_class)] * nc if fid_n_per_class else ref["counts"])
    t0 = time.time()
    xs = [generate(diffuse, model, c, counts[c], settings, threads,
                   seed + 1000 * c) for c in range(nc)]
    gen_s = time.time() - t0
    x = np.concatenate(xs)
    y = np.repeat(np.arange(nc), counts)
    labels, feats = predict(clf, x)
    per_class = [float((labels[y == c] == c).mean()) for c in range(nc)]
    if fid_n_per_class:
        starts = np.cumsum([0] + counts[:-1])
        feats = np.concatenate([feats[s0:s0 + ref["counts"][c]]
                                for c, s0 in enumerate(starts)])
    out = {
        "model": os.path.relpath(os.path.abspath(model), ROOT),
        "training_step": training_step(model),
        "data": data_name, "n_per_class": n_per_class, "seed": seed,
        "counts": counts,
        **settings,
        "accuracy": float((labels == y).mean()),
        "balanced_accuracy": float(np.mean(per_class)),
        "per_class_accuracy": per_class,
        "fid": frechet_distance(feats, ref["feat_a"]),
        "fid_floor": ref["floor"],
        "real_accuracy": ref["real_accuracy"],
        "floor_b_from_train": ref["floor_b_from_train"],
        "finite": bool(np.isfinite(x).all()),
        "generate_seconds": round(gen_s, 1),
    }
    if fid_n_per_class:
        out["fid_n_per_class"] = fid_n_per_class
    if x.shape[1] == 4:
        out["alpha_mid_fraction"] = alpha_mid_fraction(x)
        out["alpha_mid_fraction_real"] = real_alpha_mid_fraction(data_name)
    out["fid_ratio"] = out["fid"] / out["fid_floor"]
    if return_samples:
        return out, x
    return out


def add_run_arguments(ap):
    """The options evaluate.py and sweeps.py share: what to sample, how
    many, and with which CLI."""
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, choices=("fashion", "emoji"))
    ap.add_argument("--n-per-class", default="100",
                    help='samples per class, or "test": the held-out '
                    "split's class counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--diffuse", default=None, help="path of the CLI")
    ap.add_argument("--pause-file", default=None, metavar="PATH",
                    help="before each `diffuse sample` run, wait while "
                    "PATH exists (as tools/train/train.py does)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(ap)
    ap.add_argument("--sampler", default="ddim", choices=("ddim", "ddpm"))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--eta", type=float, default=0.0)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--variance", default="auto",
                    choices=("auto", "learned", "fixed-small", "fixed-large"))
    ap.add_argument("--classifier", default=None)
    ap.add_argument("--fid-n-per-class", type=int, default=None,
                    help="FID and its floor from the first K samples of "
                    "each class against K real images per class "
                    "(default: all samples)")
    ap.add_argument("--precision", default="fp32",
                    choices=("fp32", "bf16"))
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()
    PAUSE_FILE[0] = args.pause_file
    settings = {"sampler": args.sampler, "steps": args.steps,
                "eta": args.eta, "guidance": args.guidance,
                "variance": args.variance, "precision": args.precision}
    if args.n_per_class != "test":
        args.n_per_class = int(args.n_per_class)
    res = evaluate(args.model, args.data, settings, args.n_per_class,
                   args.seed, args.threads, args.diffuse, args.classifier,
                   fid_n_per_class=args.fid_n_per_class)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
