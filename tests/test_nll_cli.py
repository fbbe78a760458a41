#!/usr/bin/python3
"""`diffuse nll` end to end.

    test_nll_cli.py PATH/TO/diffuse

  - the golden cases (tests/data/golden/nll-*.ini: small random-weight
    models, learned and fixed variance, class-conditional with and without
    a null class): `diffuse nll --seed S` must give the per-t terms, the
    prior and the totals of the stored float64 reference
    (tools/diffref/likelihood.py) in its --out JSON;
  - --noise: numpy noise (not the engine's PRNG) [T, B, C, H, W] written
    here, the bound computed here with tools/diffref/likelihood.py over the
    float64 torch model with the same noise, and by `diffuse nll --noise`;
  - a PNG input gives the bound of its pixels / 127.5 - 1;
  - bad input: a one-line "diffuse: ..." error, exit 1 (2 for usage), no
    output file written, and an existing --out file left as it was.

Needs /usr/bin/python3 with torch and numpy; without them the test reports
itself skipped (exit 77) and says why.
"""

import configparser
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True
try:
    import numpy as np
    import torch
except ImportError as e:
    print("test_nll_cli: SKIPPED: needs /usr/bin/python3 with torch and numpy "
          "(apt-get install python3-torch python3-numpy): %s" % e)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from diffref import likelihood as rl  # noqa: E402
from make_golden import load_model  # noqa: E402

TOL = 1e-5
DATA = os.environ.get("DIFFUSE_TEST_DATA", os.path.join(ROOT, "tests", "data"))
GOLDEN = os.path.join(DATA, "golden")
failures = []


def check(ok, what):
    print(("ok - " if ok else "FAIL - ") + what)
    if not ok:
        failures.append(what)


def run(diffuse, args):
    p = subprocess.run([diffuse, "nll"] + args + ["--threads", "1", "-q"],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(
        np.all(np.abs(a - b) <= TOL * np.maximum(np.abs(b), 1e-3)))


def read_case(name):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(os.path.join(GOLDEN, "nll-%s.ini" % name))
    g = ini["nll"]
    with open(os.path.join(GOLDEN, "nll-%s.json" % name)) as f:
        expected = json.load(f)
    return g, expected


def case_args(g, tmp, name):
    args = ["--model", os.path.join(GOLDEN, g["model"]),
            "--input", os.path.join(GOLDEN, "nll-%s.x0.npy" % name),
            "--variance", g["variances"]]
    if int(g["timesteps"]):
        args += ["--timesteps", g["timesteps"]]
    if g["clip_denoised"] == "false":
        args += ["--no-clip"]
    if g["labels"]:
        path = os.path.join(tmp, "%s.labels.npy" % name)
        np.save(path, np.array([float(v) for v in g["labels"].split(",")],
                               np.float32))
        args += ["--class", path]
    return args


def compare_json(got, want, what):
    """got: the CLI's --out JSON; want: the reference's arrays."""
    check(got["timesteps"] == list(want["timesteps"])
          and close(got["weights"], want["weights"]),
          "%s: timesteps and weights" % what)
    check([v["variance"] for v in got["variances"]] == list(want["variances"]),
          "%s: variance kinds %s" % (what, list(want["variances"])))
    for v, var in enumerate(got["variances"]):
        check(close(var["terms_bpd"], want["terms_bpd"][v]),
              "%s: %s terms per t and image" % (what, var["variance"]))
        check(close(var["total_bpd"], want["total_bpd"][v]),
              "%s: %s totals %s" % (what, var["variance"],
                                    ["%.5f" % x for x in var["total_bpd"]]))
    check(close(got["prior_bpd"], want["prior_bpd"]), "%s: prior" % what)
    check(close(got["xstart_mse"], want["xstart_mse"])
          and close(got["eps_mse"], want["eps_mse"]), "%s: MSEs" % what)


def golden_cases(diffuse, tmp):
    for name in ("learned", "cond", "nonull"):
        g, want = read_case(name)
        out = os.path.join(tmp, "%s.json" % name)
        code, stdout, err = run(diffuse, case_args(g, tmp, name)
                                + ["--seed", g["seed"], "--out", out])
        check(code == 0, "golden %s: exit 0 %s" % (name, err.strip()))
        if code != 0:
            continue
        with open(out) as f:
            got = json.load(f)
        compare_json(got, want, "golden %s" % name)
        check(("ESTIMATE" in stdout) == (int(g["timesteps"]) > 0),
              "golden %s: an estimate says so" % name)


def numpy_noise_case(diffuse, tmp):
    """Noise from numpy, the bound here (float64 torch) and in the CLI."""
    name = "cond"
    g, _ = read_case(name)
    model, cfg = load_model(os.path.join(GOLDEN, g["model"]))
    x0 = np.load(os.path.join(GOLDEN, "nll-%s.x0.npy" % name))
    T = cfg["diffusion_steps"]
    noise = np.random.default_rng(7).standard_normal(
        (T,) + x0.shape).astype(np.float32)
    noise_path = os.path.join(tmp, "noise.npy")
    np.save(noise_path, noise)
    labels = [int(v) for v in g["labels"].split(",")]
    kinds = g["variances"].split(",")
    torch.set_num_threads(1)
    ref = rl.bound(rl.Chain(cfg["noise_schedule"], T),
                   rl.model_eps_fn(model, cfg, labels), x0.astype(np.float64),
                   lambda t: noise[t], int(g["timesteps"]), kinds,
                   g["clip_denoised"] == "true")
    want = {"timesteps": [int(t) for t in ref["timesteps"]],
            "weights": ref["weights"], "variances": kinds,
            "terms_bpd": ref["terms"], "total_bpd": ref["total"],
            "prior_bpd": ref["prior"], "xstart_mse": ref["xstart_mse"],
            "eps_mse": ref["eps_mse"]}
    out = os.path.join(tmp, "noise.json")
    code, _, err = run(diffuse, case_args(g, tmp, name)
                       + ["--noise", noise_path, "--out", out])
    check(code == 0, "--noise: exit 0 %s" % err.strip())
    if code == 0:
        with open(out) as f:
            got = json.load(f)
        compare_json(got, want, "--noise (numpy noise)")
        check(got["noise"] == noise_path, "--noise: the JSON names the file")
    return noise_path


def write_png_grey(path, pixels):
    h, w = pixels.shape
    raw = b"".join(b"\0" + bytes(row) for row in pixels.astype(np.uint8))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c \
            + struct.pack(">I", zlib.crc32(c) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_case(diffuse, tmp):
    g, _ = read_case("cond")
    model = os.path.join(GOLDEN, g["model"])
    pixels = np.random.default_rng(3).integers(0, 256, (16, 16))
    png = os.path.join(tmp, "x.png")
    npy = os.path.join(tmp, "x.npy")
    write_png_grey(png, pixels)
    np.save(npy, (pixels / 127.5 - 1).astype(np.float32)[None, None])
    res = []
    for path in (png, npy):
        out = os.path.join(tmp, "png.json")
        code, _, err = run(diffuse, ["--model", model, "--input", path,
                                     "--timesteps", "4", "--seed", "1",
                                     "--out", out])
        check(code == 0, "PNG/npy input %s: exit 0 %s"
              % (os.path.basename(path), err.strip()))
        with open(out) as f:
            res.append(json.load(f)["variances"][0]["total_bpd"])
    check(close(res[0], res[1]),
          "a PNG's bound is its pixels' (%s, %s)" % tuple(res))


def bad_input(diffuse, tmp, noise_path):
    g, _ = read_case("cond")
    model = os.path.join(GOLDEN, g["model"])
    plain = os.path.join(GOLDEN, "forward-rgb-uncond.safetensors")
    x0 = os.path.join(GOLDEN, "nll-cond.x0.npy")
    x = np.load(x0)
    out = os.path.join(tmp, "keep.json")
    with open(out, "w") as f:
        f.write("previous\n")

    def p(name, arr):
        path = os.path.join(tmp, name)
        np.save(path, np.asarray(arr, np.float32))
        return path

    cases = [
        (2, "no --input", ["--model", model]),
        (2, "bad --variance", ["--model", model, "--input", x0,
                               "--variance", "learned,wide"]),
        (2, "--variance twice the same", ["--model", model, "--input", x0,
                                          "--variance", "fixed-small,"
                                          "fixed-small"]),
        (2, "--seed with --noise", ["--model", model, "--input", x0,
                                    "--seed", "3", "--noise", noise_path]),
        (2, "--seed not a number", ["--model", model, "--input", x0,
                                    "--seed", "x"]),
        (1, "--timesteps 1", ["--model", model, "--input", x0,
                              "--timesteps", "1"]),
        (1, "--timesteps > T", ["--model", model, "--input", x0,
                                "--timesteps", "1001"]),
        (1, "class out of range", ["--model", model, "--input", x0,
                                   "--class", "9"]),
        (1, "unknown class name", ["--model", model, "--input", x0,
                                   "--class", "hexagon"]),
        (1, "labels of the wrong length", ["--model", model, "--input", x0,
                                           "--class", p("l3.npy", [0, 1, 2])]),
        (1, "a label that is not an integer",
         ["--model", model, "--input", x0, "--class", p("lf.npy", [0.5, 1])]),
        (1, "values outside [-1, 1]",
         ["--model", model, "--input", p("big.npy", x * 2)]),
        (1, "NaN in the images",
         ["--model", model, "--input",
          p("nan.npy", np.where(np.arange(x.size).reshape(x.shape) == 3,
                                np.nan, x))]),
        (1, "wrong channels", ["--model", plain, "--input", x0]),
        (1, "size not a multiple", ["--model", model, "--input",
                                    p("odd.npy", x[:, :, :15, :15])]),
        (1, "learned variance without learn_sigma",
         ["--model", model, "--input", x0, "--variance", "learned"]),
        (1, "noise of 4 dimensions", ["--model", model, "--input", x0,
                                      "--noise", x0]),
        (1, "noise for another T", ["--model", model, "--input", x0,
                                    "--noise", p("n5.npy",
                                                 np.zeros((5, 2, 1, 16, 16)))]),
        (1, "missing noise file", ["--model", model, "--input", x0,
                                   "--noise", os.path.join(tmp, "none.npy")]),
        (1, "out directory missing", ["--model", model, "--input", x0,
                                      "--out", os.path.join(tmp, "no", "r.json")]),
    ]
    for want, what, args in cases:
        if "--out" not in args:
            args = args + ["--out", out]
        code, _, err = run(diffuse, args)
        lines = err.strip().split("\n")
        check(code == want and len(lines) == 1
              and lines[0].startswith("diffuse: "),
              "%s: exit %d (want %d), %r" % (what, code, want, err.strip()))
        with open(out) as f:
            check(f.read() == "previous\n", "%s: --out left as it was" % what)
    check(not os.path.exists(os.path.join(tmp, "no")),
          "no directory created for --out")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: test_nll_cli.py PATH/TO/diffuse")
    diffuse = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        golden_cases(diffuse, tmp)
        noise_path = numpy_noise_case(diffuse, tmp)
        png_case(diffuse, tmp)
        bad_input(diffuse, tmp, noise_path)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
