#!/usr/bin/python3
"""Writes tests/data/golden/ (docs/DESIGN.md "Golden test data"): small
random-weight ADM UNets with reference forward outputs, and sampler
trajectories, all computed in float64 by our PyTorch/numpy reference
(the diffref package: adm_unet, diffusion, rng).

    tools/make_golden.py [OUTDIR] [--only CASE]...
                         (default: tests/data/golden; every case)

--only writes just the named cases (forward or trajectory names, or
nll-NAME for the bound's cases), leaving the other files as they are.

Every weight is random (including the output convs and GroupNorm affine
parameters that ADM initialises to zero/one), so outputs are non-trivial.
Models stored as F16 are evaluated with the same rounded weights: the
reference always reads the model back from the written file.

Deterministic: torch and numpy generators are seeded per case, so rerunning
gives byte-identical files on the same torch/numpy versions.
"""

import configparser
import io
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from diffref import diffusion as rd
from diffref import rng as ref_rng
from diffref.adm_unet import (ADMUNet, config_from_metadata,
                              config_to_metadata, make_config, randomize_)
from diffref.safetensors_io import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))

DESCRIPTION = ("random weights for gimp-diffusion golden tests "
               "(tools/make_golden.py); not a trained model")

# name: (config overrides, stored dtype, seed, inputs: (H, W, t list, labels))
# Labels are class indices; -1 marks "no label" (unconditional models; the
# stored y.npy then holds zeros, which such models ignore).
FORWARD = {
    # grey, class-conditional with a null class, legacy attention order,
    # heads by count (2), FiLM scale-shift, conv down/upsampling.
    "grey-cond": (dict(
        image_size=16, in_channels=1, model_channels=32, num_res_blocks=1,
        channel_mult=[1, 1], attention_resolutions=[8], num_heads=2,
        use_scale_shift_norm=True, resblock_updown=False,
        use_new_attention_order=False, num_classes=5, null_class=4,
        class_names=["circle", "square", "cross", "ring", "none"]),
        "F32", 101, (16, 16, [10.0, 900.0], [1, 4])),
    # RGBA, learned sigma, ResBlock up/down, new attention order, heads by
    # channels (16), attention at two resolutions (16 and 8 px).
    "rgba-sigma": (dict(
        image_size=16, in_channels=4, model_channels=32, num_res_blocks=1,
        channel_mult=[1, 2], attention_resolutions=[16, 8],
        num_head_channels=16, use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=True, learn_sigma=True, num_classes=0,
        noise_schedule="cosine"),
        "F16", 102, (16, 16, [999.0, 37.0], [-1, -1])),
    # RGB, unconditional, no scale-shift (emb added), one head; its
    # diffusion uses T = 200 with rescale_timesteps (t x 5 in the network),
    # so the forward inputs hold such rescaled, fractional values.
    "rgb-uncond": (dict(
        image_size=16, in_channels=3, model_channels=32, num_res_blocks=1,
        channel_mult=[1, 1], attention_resolutions=[8], num_heads=1,
        use_scale_shift_norm=False, resblock_updown=False, num_classes=0,
        diffusion_steps=200, noise_schedule="cosine", rescale_timesteps=True),
        "F32", 103, (16, 16, [0.0, 512.5], [-1, -1])),
    # grey + alpha, three levels, two res blocks, class-conditional without
    # a null class, ResBlock up/down, heads by count with a different count
    # on the way up (num_heads 4, num_heads_upsample 2).
    "ga-3level": (dict(
        image_size=32, in_channels=2, model_channels=32, num_res_blocks=2,
        channel_mult=[1, 1, 1], attention_resolutions=[8], num_heads=4,
        num_heads_upsample=2, use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=False, num_classes=3),
        "F16", 104, (32, 32, [250.0, 3.0], [2, 0])),
    # non-square input run fully convolutionally: a 16x16 model at 16x32
    # (attention at ds 2 then covers 8x16 positions); legacy attention with
    # heads by channels.
    "nonsquare": (dict(
        image_size=16, in_channels=3, model_channels=32, num_res_blocks=1,
        channel_mult=[1, 2], attention_resolutions=[8], num_head_channels=32,
        use_scale_shift_norm=True, resblock_updown=False,
        use_new_attention_order=False, num_classes=0),
        "F16", 105, (16, 32, [600.0, 120.0], [-1, -1])),
    # fractional channel_mult as guided-diffusion's 512 px model
    # (0.5,1,1,2,2,4,4): int(mult x 64) = 32, 64, 128 channels, the first
    # conv at 32; unconditional with learned sigma (the kind of separate
    # model guided-diffusion pairs with class models that lack a null
    # class: it serves as the null_model of "onelevel" and "ga-3level").
    "frac": (dict(
        image_size=16, in_channels=2, model_channels=64, num_res_blocks=1,
        channel_mult=[0.5, 1, 2], attention_resolutions=[8],
        num_head_channels=32, use_scale_shift_norm=True,
        resblock_updown=False, use_new_attention_order=False,
        learn_sigma=True, num_classes=0),
        "F16", 106, (16, 16, [999.0, 421.0], [-1, -1])),
    # one level (no down/upsampling), grey + alpha, class-conditional
    # WITHOUT a null class and with learned sigma, like OpenAI's ImageNet
    # models; T = 1000 linear like "frac", its null_model in the tests.
    "onelevel": (dict(
        image_size=16, in_channels=2, model_channels=32, num_res_blocks=1,
        channel_mult=[1], attention_resolutions=[], num_heads=1,
        use_scale_shift_norm=True, resblock_updown=False,
        use_new_attention_order=True, learn_sigma=True, num_classes=3),
        "F32", 107, (16, 16, [5.0, 777.0], [0, 2])),
}

# name: sampler settings; model names a forward case's model file.
TRAJECTORIES = {
    "ddim-guided": dict(model="grey-cond", sampler="ddim", respacing="ddim10",
                        eta=0.0, variance="auto", guidance=1.5, class_label=2,
                        seed=7, count=2, height=16, width=16,
                        clip_denoised=True, strength=1.0),
    "ddim-eta": dict(model="rgb-uncond", sampler="ddim", respacing="ddim10",
                     eta=0.5, variance="auto", guidance=0.0, class_label=-1,
                     seed=11, count=1, height=16, width=16,
                     clip_denoised=True, strength=1.0),
    "ddpm-learned": dict(model="rgba-sigma", sampler="ddpm", respacing="5,5",
                         eta=0.0, variance="learned", guidance=0.0,
                         class_label=-1, seed=12, count=1, height=16,
                         width=16, clip_denoised=True, strength=1.0),
    "ddpm-small": dict(model="ga-3level", sampler="ddpm", respacing="8",
                       eta=0.0, variance="fixed-small", guidance=0.0,
                       class_label=1, seed=13, count=2, height=16, width=16,
                       clip_denoised=True, strength=1.0),
    # variance "auto" on a model without learn_sigma means fixed-large;
    # non-square 16x32 trajectory.
    "ddpm-auto-wide": dict(model="rgb-uncond", sampler="ddpm", respacing="10",
                           eta=0.0, variance="auto", guidance=0.0,
                           class_label=-1, seed=15, count=1, height=16,
                           width=32, clip_denoised=True, strength=1.0),
    "img2img": dict(model="grey-cond", sampler="ddim", respacing="ddim20",
                    eta=0.3, variance="auto", guidance=0.0, class_label=0,
                    seed=14, count=1, height=16, width=16,
                    clip_denoised=True, strength=0.5),
    # guidance for a class model without a null class from a separate
    # unconditional model (ε(x, ∅) from "frac", the learned variance from
    # "onelevel"), as guided-diffusion pairs its ImageNet models.
    "ddpm-null-model": dict(model="onelevel", null_model="frac",
                            sampler="ddpm", respacing="6", eta=0.0,
                            variance="learned", guidance=2.0, class_label=1,
                            seed=16, count=2, height=16, width=16,
                            clip_denoised=True, strength=1.0),
}

# name: the variational bound in bits/dim (tools/diffref/likelihood.py,
# engine/likelihood.c) on a forward case's model; labels -1 = null class
# (None: unconditional); timesteps 0 = every t (the bound), else an
# estimate from that many t; noise from ref_rng (seed) as the engine draws it.
NLL = {
    # learn_sigma, F16, cosine T = 1000, RGBA: the bound under all three
    # variances from the same network passes; an estimate from 12 t
    "learned": dict(model="rgba-sigma", variances=["learned", "fixed-small",
                                                   "fixed-large"],
                    timesteps=12, seed=21, labels=None, clip_denoised=True),
    # no learn_sigma (auto = fixed-large), T = 200 with rescale_timesteps:
    # the full sum over every t, unclipped x0
    "full": dict(model="rgb-uncond", variances=["auto", "fixed-small"],
                 timesteps=0, seed=22, labels=None, clip_denoised=False),
    # class-conditional with a null class: one image labelled, one not
    "cond": dict(model="grey-cond", variances=["fixed-large", "fixed-small"],
                 timesteps=9, seed=23, labels=[1, -1], clip_denoised=True),
    # classes without a null class, learned sigma, linear T = 1000
    "nonull": dict(model="onelevel", variances=["learned"], timesteps=7,
                   seed=24, labels=[0, 2], clip_denoised=False),
}


def model_path(out, name):
    return os.path.join(out, "forward-%s.safetensors" % name)


def load_model(path, dtype=torch.float64):
    """The model exactly as the file stores it (F16 weights widened)."""
    tensors, md = load_file(path)
    cfg = config_from_metadata(md)
    model = ADMUNet(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()},
                          strict=True)
    return model.to(dtype).eval(), cfg


def write_model(out, name, over, dtype, seed):
    cfg = make_config(**over)
    model = ADMUNet(cfg).eval()
    randomize_(model, torch.Generator().manual_seed(seed))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    md = config_to_metadata(cfg, {"description": DESCRIPTION,
                                  "license": "CC0-1.0",
                                  "source": "tools/make_golden.py"})
    path = model_path(out, name)
    save_file(path, sd, md, dtype=dtype)
    return path, model


def run_forward(model, x, t, y):
    with torch.no_grad():
        yt = None if y is None else torch.from_numpy(y.astype(np.int64))
        return model(torch.from_numpy(x), torch.from_numpy(t), yt).double() \
            .numpy()


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))


def check_convert_roundtrip(model, cfg, path, dtype):
    """convert_checkpoint.py on torch.save(state_dict) must give the same
    tensors as the file written directly (both rounded to dtype)."""
    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "m.pt")
        st = os.path.join(tmp, "m.safetensors")
        torch.save(model.state_dict(), pt)
        mult = ",".join(str(m) for m in cfg["channel_mult"])
        flags = [
            "--image_size", str(cfg["image_size"]),
            "--in_channels", str(cfg["in_channels"]),
            "--num_channels", str(cfg["model_channels"]),
            "--num_res_blocks", str(cfg["num_res_blocks"]),
            "--channel_mult", mult,
            "--attention_resolutions",
            ",".join(str(r) for r in cfg["attention_resolutions"]),
            "--num_heads", str(cfg["num_heads"]),
            "--num_head_channels", str(cfg["num_head_channels"]),
            "--num_heads_upsample", str(cfg["num_heads_upsample"]),
            "--use_scale_shift_norm", str(cfg["use_scale_shift_norm"]),
            "--resblock_updown", str(cfg["resblock_updown"]),
            "--use_new_attention_order", str(cfg["use_new_attention_order"]),
            "--learn_sigma", str(cfg["learn_sigma"]),
            "--class_cond", str(cfg["num_classes"] > 0),
            "--num_classes", str(cfg["num_classes"]),
            "--diffusion_steps", str(cfg["diffusion_steps"]),
            "--noise_schedule", cfg["noise_schedule"],
            "--rescale_timesteps", str(cfg["rescale_timesteps"]),
            "--dtype", dtype.lower(),
        ]
        if cfg.get("null_class", -1) >= 0:
            flags += ["--null-class", str(cfg["null_class"])]
        subprocess.run([sys.executable, os.path.join(HERE,
                                                     "convert_checkpoint.py"),
                        pt, "-o", st] + flags, check=True,
                       stdout=subprocess.DEVNULL)
        a, md_a = load_file(st)
        b, md_b = load_file(path)
        assert list(a) == list(b), "tensor order differs after conversion"
        for k in a:
            assert np.array_equal(a[k], b[k]), k
        for k in md_b:
            if k not in ("description", "license", "source", "class_names"):
                assert md_a.get(k) == md_b[k], (k, md_a.get(k), md_b[k])


def make_forward(out, name, spec, log):
    over, dtype, seed, (H, W, ts, labels) = spec
    path, model32 = write_model(out, name, over, dtype, seed)
    model, cfg = load_model(path)
    rng = np.random.default_rng(seed)
    B = len(ts)
    x = rng.standard_normal((B, cfg["in_channels"], H, W)).astype(np.float32)
    t = np.array(ts, dtype=np.float32)
    y = None if cfg["num_classes"] == 0 else np.array(labels, np.float32)
    ref = run_forward(model, x, t, y)
    # How far float32 arithmetic lands from the float64 reference: what the
    # C engine may expect at best.
    m32, _ = load_model(path, torch.float32)
    err32 = rel_err(run_forward(m32, x, t, y), ref)
    base = os.path.join(out, "forward-%s" % name)
    np.save(base + ".x.npy", x)
    np.save(base + ".t.npy", t)
    # y.npy always exists; unconditional models ignore it (zeros there).
    np.save(base + ".y.npy", y if y is not None else np.zeros(B, np.float32))
    np.save(base + ".out.npy", ref.astype(np.float32))
    if dtype == "F32" or any(m != int(m) for m in cfg["channel_mult"]):
        check_convert_roundtrip(model32, cfg, path, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    log.append("forward-%-12s %s %5.0fk params  x %s  |out| max %.2f  "
               "float32 vs float64 %.1e"
               % (name, dtype, n_params / 1e3, list(x.shape),
                  np.abs(ref).max(), err32))


def init_image(shape, seed):
    """A smooth deterministic picture in [-1, 1] (a disc and a gradient)."""
    B, C, H, W = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W),
                         indexing="ij")
    img = np.empty(shape, np.float64)
    for c in range(C):
        disc = (xx ** 2 + yy ** 2 < 0.5 ** 2).astype(np.float64)
        img[:, c] = 0.8 * disc - 0.6 * (1 - disc) + 0.2 * xx * (c + 1) / C
    return np.clip(img, -1, 1).astype(np.float32)


def make_trajectory(out, name, s, log):
    model_file = model_path(out, s["model"])
    shape = (s["count"], None, s["height"], s["width"])
    results = {}
    for dt in (torch.float64, torch.float32):
        model, cfg = load_model(model_file, dt)
        shape = (s["count"], cfg["in_channels"], s["height"], s["width"])
        sched = rd.Schedule(cfg["noise_schedule"], cfg["diffusion_steps"],
                            s["respacing"])
        null_model = null_cfg = None
        if "null_model" in s:
            null_model, null_cfg = load_model(
                model_path(out, s["null_model"]), dt)
        den = rd.model_denoiser(model, cfg, s["count"], s["class_label"],
                                s["guidance"], null_model, null_cfg)
        init = None
        if s["strength"] < 1.0:
            init = init_image(shape, s["seed"])
        x, info = rd.sample(sched, den, shape, sampler=s["sampler"],
                            eta=s["eta"], variance=s["variance"],
                            has_variance=cfg["learn_sigma"], seed=s["seed"],
                            clip_denoised=s["clip_denoised"], init_image=init,
                            strength=s["strength"])
        results[dt] = x
    x = results[torch.float64]
    err32 = rel_err(results[torch.float32], x)
    base = os.path.join(out, "traj-%s" % name)
    # noise.npy: the engine's init_noise for this run: x_T for generation,
    # the forward-process noise (stream 1) for img2img.
    stream = rd.STREAM_IMG2IMG if init is not None else rd.STREAM_X_T
    np.save(base + ".noise.npy", ref_rng.normal_like(s["seed"], stream, shape))
    np.save(base + ".x0.npy", x.astype(np.float32))
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    g = {
        "model": os.path.basename(model_file),
        "sampler": s["sampler"],
        "respacing": s["respacing"],
        "eta": repr(float(s["eta"])),
        "variance": s["variance"],
        "guidance": repr(float(s["guidance"])),
        "class_label": str(s["class_label"]),
        "seed": str(s["seed"]),
        "count": str(s["count"]),
        "height": str(s["height"]),
        "width": str(s["width"]),
        "clip_denoised": "true" if s["clip_denoised"] else "false",
        "strength": repr(float(s["strength"])),
    }
    if "null_model" in s:
        g["null_model"] = os.path.basename(model_path(out, s["null_model"]))
    if init is not None:
        np.save(base + ".init.npy", init)
        g["init_image"] = os.path.basename(base + ".init.npy")
    # informative, for debugging a mismatch
    g["start_index"] = str(info["start_index"])
    g["start_timestep"] = str(info["start_timestep"])
    g["n_steps"] = str(info["n_steps"])
    ini["trajectory"] = g
    buf = io.StringIO()
    ini.write(buf, space_around_delimiters=False)
    with open(base + ".ini", "w") as f:
        f.write("# made by tools/make_golden.py; see README.md\n")
        f.write(buf.getvalue())
    log.append("traj-%-13s %s %-7s %s eta %.1f w %.1f steps %d (start t %d)"
               "  |x0| max %.2f  float32 vs float64 %.1e"
               % (name, s["sampler"], s["respacing"], s["variance"], s["eta"],
                  s["guidance"], info["n_steps"], info["start_timestep"],
                  np.abs(x).max(), err32))


def nll_images(shape, seed):
    """8-bit images in [-1, 1] (pixel / 127.5 - 1): a disc and a ramp,
    pixel noise, and some pixels at exactly 0 and 255 (the open bins)."""
    B, C, H, W = shape
    rng = np.random.default_rng(seed)
    smooth = init_image(shape, seed).astype(np.float64)
    pix = np.round((smooth + 1) * 127.5) + rng.integers(-20, 21, size=shape)
    pix = np.clip(pix, 0, 255)
    pix.reshape(B, -1)[:, :8] = 0
    pix.reshape(B, -1)[:, 8:16] = 255
    return (pix / 127.5 - 1).astype(np.float32)


def make_nll(out, name, s, log):
    import json
    from diffref import likelihood as rl
    model_file = model_path(out, s["model"])
    results = {}
    for dt in (torch.float64, torch.float32):
        model, cfg = load_model(model_file, dt)
        C, H = cfg["in_channels"], cfg["image_size"]
        x0 = nll_images((2, C, H, H), s["seed"])
        labels = s["labels"] if s["labels"] is not None else [-1, -1]
        chain = rl.Chain(cfg["noise_schedule"], cfg["diffusion_steps"])
        kinds = rl.resolve_variances(s["variances"], cfg["learn_sigma"])
        results[dt] = rl.bound(
            chain, rl.model_eps_fn(model, cfg, labels), x0,
            lambda t: rl.noise_for_t(s["seed"], t, x0.shape),
            s["timesteps"], kinds, s["clip_denoised"])
    r = results[torch.float64]
    err32 = float(np.max(np.abs(results[torch.float32]["terms"] - r["terms"])
                         / np.maximum(np.abs(r["terms"]), 1e-3)))
    base = os.path.join(out, "nll-%s" % name)
    np.save(base + ".x0.npy", x0)
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini["nll"] = {
        "model": os.path.basename(model_file),
        "variances": ",".join(s["variances"]),
        "timesteps": str(s["timesteps"]),
        "seed": str(s["seed"]),
        "labels": "" if s["labels"] is None
        else ",".join(str(v) for v in s["labels"]),
        "clip_denoised": "true" if s["clip_denoised"] else "false",
    }
    buf = io.StringIO()
    ini.write(buf, space_around_delimiters=False)
    with open(base + ".ini", "w") as f:
        f.write("# made by tools/make_golden.py; see README.md\n")
        f.write(buf.getvalue())
    expected = {
        "variances": kinds,
        "timesteps": [int(t) for t in r["timesteps"]],
        "weights": [float(w) for w in r["weights"]],
        "terms_bpd": r["terms"].tolist(),
        "prior_bpd": r["prior"].tolist(),
        "total_bpd": r["total"].tolist(),
        "xstart_mse": r["xstart_mse"].tolist(),
        "eps_mse": r["eps_mse"].tolist(),
    }
    with open(base + ".json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    log.append("nll-%-10s %-10s %s N=%d  total %s bits/dim  "
               "float32 vs float64 %.1e"
               % (name, s["model"], "/".join(kinds),
                  len(r["timesteps"]),
                  " ".join("%.4f" % v for v in r["total"].mean(1)), err32))


def main():
    args = sys.argv[1:]
    only = set()
    while "--only" in args:
        i = args.index("--only")
        if i + 1 >= len(args):
            sys.exit("make_golden.py: --only needs a case name")
        only.add(args[i + 1])
        del args[i:i + 2]
    unknown = (only - set(FORWARD) - set(TRAJECTORIES)
               - set("nll-" + n for n in NLL))
    if unknown or len(args) > 1:
        sys.exit("usage: make_golden.py [OUTDIR] [--only CASE]...%s"
                 % ("  (unknown case: %s)" % ", ".join(sorted(unknown))
                    if unknown else ""))
    out = args[0] if args else os.path.join(
        HERE, "..", "tests", "data", "golden")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    log = []
    for name, spec in FORWARD.items():
        if not only or name in only:
            make_forward(out, name, spec, log)
    for name, s in TRAJECTORIES.items():
        if not only or name in only:
            make_trajectory(out, name, s, log)
    for name, s in NLL.items():
        if not only or "nll-" + name in only:
            make_nll(out, name, s, log)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    for line in log:
        print(line)
    print("%s: %.2f MB" % (os.path.normpath(out), total / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
