#!/usr/bin/python3
"""Measure preset files through the C engine (`diffuse sample --preset`).

    tools/eval/presets.py --data fashion --n-per-class 20 \
        presets/*.preset [more.preset ...] [--json r.json] [--markdown t.md]

For every preset that makes images from noise (presets that only set the
img2img strength are skipped), tools/eval/evaluate.py's measurements of
the samples the CLI makes with that preset file: class accuracy with the
evaluation classifier, FID in its feature space (and the real-vs-real
floor), plus

  - washed out: the share of samples in which more than 40% of the
    pixels are near white (every channel above 0.8 in [-1, 1]; with
    alpha, opaque too), the blown-out white squares DDIM with eta = 0
    gives on undertrained models; the same share of the held-out real
    images is printed beside it;
  - seconds per image: the CLI's wall time over the samples (one thread
    unless --threads; a loaded machine makes it larger, so compare rows
    of one run only).

A preset's settings are its file's keys over the CLI's defaults (read from
`diffuse sample --help`); samples are cached by those settings, so a
candidate and a shipped preset with the same values share them.
"""
import argparse
import configparser
import json
import os
import re
import subprocess

import numpy as np

import evaluate  # tools/eval/evaluate.py

KEYS = ("sampler", "steps", "eta", "guidance", "variance")
WHITE = 0.8      # a channel value counted as white
WHITE_SHARE = 0.4  # of the pixels, for a washed-out image


def cli_defaults(diffuse):
    """{setting: default} from `diffuse sample --help` ("default X unless a
    preset sets it")."""
    text = subprocess.run([diffuse, "sample", "--help"], check=True,
                          stdout=subprocess.PIPE, text=True).stdout
    out = {}
    for key in KEYS:
        m = re.search(r"--%s=\S+.*?default (\S+) unless a preset" % key, text)
        if m is None:
            raise SystemExit("no default for %s in diffuse sample --help" % key)
        out[key] = m.group(1).rstrip(";,")
    return out


def read_preset(path, defaults):
    """(name, description, settings) of a .preset file, or None for a
    preset that sets nothing of noise-to-image sampling."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    sec = cp["preset"]
    given = {k: sec[k] for k in KEYS if k in sec}
    if not given:
        return None
    v = dict(defaults, **given)
    s = {"sampler": v["sampler"], "steps": int(v["steps"]),
         "eta": float(v["eta"]), "guidance": float(v["guidance"]),
         "variance": v["variance"]}
    s["preset"] = " ".join("%s=%s" % (k, s[k]) for k in KEYS)
    s["preset_file"] = os.path.abspath(path)
    name = sec.get("name", os.path.splitext(os.path.basename(path))[0])
    return name, sec.get("description", ""), s


def washed_out(x):
    """Share of images [N, C, H, W] with more than WHITE_SHARE of the
    pixels white in every channel."""
    white = np.all(x > WHITE, axis=1).mean(axis=(1, 2))
    return float((white > WHITE_SHARE).mean())


def real_washed_out(data_name):
    data = np.load(os.path.join(evaluate.ROOT, "tools", "train", "cache",
                                data_name + ".npz"))
    return washed_out(data["test_x"].astype(np.float32) / 127.5 - 1.0)


def markdown(rows, real_wo):
    out = ["| preset | settings | accuracy | FID / floor | washed out | "
           "s / image |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %s | %.3f | %.2f | %.0f%% | %.2f |" % (
            r["name"], r["preset"], r["accuracy"], r["fid_ratio"],
            100 * r["washed_out"], r["seconds_per_image"]))
    r0 = rows[0]
    out.append("")
    out.append("%s samples (%d per class), seed %d, model `%s` (training "
               "step %s); FID floor %.3f; washed out among the held-out "
               "real images: %.1f%%." % (
                   sum(r0["counts"]), r0["counts"][0], r0["seed"],
                   r0["model"], r0["training_step"], r0["fid_floor"],
                   100 * real_wo))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    evaluate.add_run_arguments(ap)
    ap.add_argument("presets", nargs="+", help=".preset files")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    if args.n_per_class != "test":
        args.n_per_class = int(args.n_per_class)
    diffuse = evaluate.find_diffuse(args.diffuse)
    defaults = cli_defaults(diffuse)
    real_wo = real_washed_out(args.data)
    rows = []
    for path in args.presets:
        p = read_preset(path, defaults)
        if p is None:
            continue
        name, desc, s = p
        r, x = evaluate.evaluate(args.model, args.data, s, args.n_per_class,
                                 args.seed, args.threads or 1, diffuse,
                                 return_samples=True)
        r.pop("preset_file", None)
        r.update(name=name, description=desc, washed_out=washed_out(x),
                 seconds_per_image=r["generate_seconds"] / len(x))
        rows.append(r)
        print("%-20s %-45s acc %.3f  FID/floor %.2f  washed out %3.0f%%  "
              "%.1f s" % (name, s["preset"], r["accuracy"], r["fid_ratio"],
                          100 * r["washed_out"], r["generate_seconds"]),
              flush=True)
        # after every preset: a long run stopped early keeps what it has
        save(args, rows, real_wo)
    print(markdown(rows, real_wo))


def save(args, rows, real_wo):
    for path, text in ((args.json, lambda: json.dumps(
            {"real_washed_out": real_wo, "rows": rows}, indent=1) + "\n"),
            (args.markdown, lambda: markdown(rows, real_wo))):
        if path:
            with open(path + ".tmp", "w") as f:
                f.write(text())
            os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
