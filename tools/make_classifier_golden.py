#!/usr/bin/python3
"""Writes the classifier cases of tests/data/golden/: small random-weight
noisy-image classifiers (tools/diffref/classifier.py, guided-diffusion's
EncoderUNetModel) with reference logits and gradients
∇x log softmax(logits)[y] by torch autograd in float64.

    tools/make_classifier_golden.py [OUTDIR]   (default tests/data/golden)

Files per case: clf-CASE.safetensors (F16 weights; the reference reads the
rounded weights back), clf-CASE.x.npy [B,C,H,W], clf-CASE.t.npy [B],
clf-CASE.y.npy [B] (float32 holding labels), clf-CASE.logits.npy [B,K],
clf-CASE.grad.npy [B,C,H,W].  Deterministic (seeded per case).

And classifier-guided trajectories, traj-clf-CASE.* in the trajectory
format of tools/make_golden.py (docs/DESIGN.md "Golden test data") plus
the keys classifier and classifier_scale: a golden UNet guided by a golden
classifier, sampled by diffuse/ref_diffusion in float64 with cond_fn =
s·(torch autograd of log softmax(logits)[y]) at the original timestep.
"""

import configparser
import io
import os
import sys

import numpy as np
import torch

from diffref.adm_unet import randomize_
from diffref.classifier import (EncoderUNet, classifier_config_from_metadata,
                                classifier_config_to_metadata, grad_log_prob,
                                make_classifier_config)
from diffref import diffusion as rd
from diffref import rng as ref_rng
from diffref.safetensors_io import load_file, save_file

import make_golden as mg

HERE = os.path.dirname(os.path.abspath(__file__))

DESCRIPTION = ("random weights for gimp-diffusion golden tests "
               "(tools/make_classifier_golden.py); not a trained classifier")

# name: (config overrides, seed, (H, W, timesteps, labels))
CASES = {
    # grey, attention pool, scale-shift, down-ResBlocks, heads by channels
    "grey-attn-ss-updown": (dict(
        image_size=16, in_channels=1, model_channels=32, out_channels=5,
        num_res_blocks=1, channel_mult=[1, 1], attention_resolutions=[8],
        num_head_channels=16, use_scale_shift_norm=True,
        resblock_updown=True, pool="attention",
        class_names=["a", "b", "c", "d", "e"]),
        201, (16, 16, [10.0, 900.0], [1, 4])),
    # RGB, adaptive pool, emb added (no scale-shift), stride-2 conv
    # downsampling, three levels, heads by count, non-square input
    "rgb-adaptive-noss-conv": (dict(
        image_size=16, in_channels=3, model_channels=32, out_channels=4,
        num_res_blocks=1, channel_mult=[1, 1, 2], attention_resolutions=[8],
        num_heads=2, num_head_channels=-1, use_scale_shift_norm=False,
        resblock_updown=False, pool="adaptive"),
        202, (16, 32, [500.0, 3.0], [3, 0])),
    # RGBA, attention pool, no scale-shift, down-ResBlocks, three levels,
    # attention at two resolutions, new attention order, two res blocks
    "rgba-attn-noss-updown": (dict(
        image_size=16, in_channels=4, model_channels=32, out_channels=3,
        num_res_blocks=2, channel_mult=[1, 1, 1],
        attention_resolutions=[8, 4], num_head_channels=16,
        use_scale_shift_norm=False, resblock_updown=True,
        use_new_attention_order=True, pool="attention"),
        203, (16, 16, [250.0], [2])),
    # RGB, adaptive pool, scale-shift, conv downsampling, 8x8 skip-conv
    # widening (32 -> 64 channels), one attention block in the middle only
    "rgb-adaptive-ss-conv": (dict(
        image_size=8, in_channels=3, model_channels=32, out_channels=6,
        num_res_blocks=1, channel_mult=[1, 2], attention_resolutions=[],
        num_head_channels=32, use_scale_shift_norm=True,
        resblock_updown=False, pool="adaptive"),
        204, (8, 8, [999.0, 0.0, 123.0], [5, 0, 2])),
}


def make_case(outdir, name):
    over, seed, (h, w, ts, ys) = CASES[name]
    cfg = make_classifier_config(**over)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = randomize_(EncoderUNet(cfg), gen)
    path = os.path.join(outdir, "clf-%s.safetensors" % name)
    md = classifier_config_to_metadata(cfg, {"description": DESCRIPTION})
    save_file(path, {k: v.detach().numpy()
                     for k, v in model.state_dict().items()}, md, dtype="F16")
    # the reference uses exactly the stored (rounded) weights
    tensors, md2 = load_file(path)
    ref = EncoderUNet(classifier_config_from_metadata(md2)).double()
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64))
                         for k, v in tensors.items()})
    x = torch.rand((len(ts), cfg["in_channels"], h, w), generator=gen,
                   dtype=torch.float64) * 2 - 1
    t = torch.tensor(ts, dtype=torch.float64)
    logits, grad = grad_log_prob(ref, x, t, ys)
    # float32 run, to show what a float32 engine should see
    r32 = EncoderUNet(classifier_config_from_metadata(md2))
    r32.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32))
                         for k, v in tensors.items()})
    l32, g32 = grad_log_prob(r32, x.float(), t.float(), ys)
    base = os.path.join(outdir, "clf-%s" % name)
    np.save(base + ".x.npy", x.numpy().astype(np.float32))
    np.save(base + ".t.npy", t.numpy().astype(np.float32))
    np.save(base + ".y.npy", np.asarray(ys, np.float32))
    np.save(base + ".logits.npy", logits.numpy().astype(np.float32))
    np.save(base + ".grad.npy", grad.numpy().astype(np.float32))
    dl = (l32.double() - logits).abs().max() / logits.abs().max()
    dg = (g32.double() - grad).abs().max() / grad.abs().max()
    print("clf-%s: logits max %.3g, grad max %.3g; float32 reference "
          "rel. diff %.2g / %.2g" % (name, logits.abs().max(),
                                      grad.abs().max(), dl, dg))


# name: trajectory settings (as make_golden.TRAJECTORIES) + classifier
TRAJECTORIES = {
    # DDIM eta 0 with classifier-free guidance w = 1 on top
    "clf-ddim-cfg": dict(model="grey-cond", classifier="grey-attn-ss-updown",
                         classifier_scale=4.0, sampler="ddim",
                         respacing="ddim6", eta=0.0, variance="auto",
                         guidance=1.0, class_label=2, seed=31, count=2,
                         height=16, width=16, clip_denoised=True,
                         strength=1.0),
    # DDPM with learned Σ (condition_mean's Σ = the learned variance),
    # an unconditional model steered by the classifier alone
    "clf-ddpm-learned": dict(model="rgba-sigma",
                             classifier="rgba-attn-noss-updown",
                             classifier_scale=8.0, sampler="ddpm",
                             respacing="5", eta=0.0, variance="learned",
                             guidance=0.0, class_label=1, seed=32, count=1,
                             height=16, width=16, clip_denoised=True,
                             strength=1.0),
    # DDPM fixed-large (β, and β̃_1 at the last step)
    "clf-ddpm-large": dict(model="grey-cond", classifier="grey-attn-ss-updown",
                           classifier_scale=3.0, sampler="ddpm",
                           respacing="6", eta=0.0, variance="fixed-large",
                           guidance=0.0, class_label=0, seed=33, count=1,
                           height=16, width=16, clip_denoised=True,
                           strength=1.0),
    # img2img with DDIM eta 0.5
    "clf-img2img": dict(model="grey-cond", classifier="grey-attn-ss-updown",
                        classifier_scale=2.0, sampler="ddim",
                        respacing="ddim10", eta=0.5, variance="auto",
                        guidance=0.0, class_label=3, seed=34, count=1,
                        height=16, width=16, clip_denoised=True,
                        strength=0.6),
}


def load_classifier(path, dtype):
    tensors, md = load_file(path)
    net = EncoderUNet(classifier_config_from_metadata(md))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    return net.to(dtype).eval()


def make_trajectory(out, name, s):
    model_file = mg.model_path(out, s["model"])
    clf_file = os.path.join(out, "clf-%s.safetensors" % s["classifier"])
    results = {}
    for dt in (torch.float64, torch.float32):
        model, cfg = mg.load_model(model_file, dt)
        clf = load_classifier(clf_file, dt)
        shape = (s["count"], cfg["in_channels"], s["height"], s["width"])
        sched = rd.Schedule(cfg["noise_schedule"], cfg["diffusion_steps"],
                            s["respacing"])
        label = s["class_label"] if cfg["num_classes"] else -1
        den = rd.model_denoiser(model, cfg, s["count"], label, s["guidance"])
        t_scale = (1000.0 / cfg["diffusion_steps"]
                   if cfg.get("rescale_timesteps") else 1.0)

        def cond_fn(x, i, t_model, clf=clf, dt=dt):
            t = torch.full((x.shape[0],), float(t_model) * t_scale,
                           dtype=dt)
            _, g = grad_log_prob(clf, torch.from_numpy(x).to(dt), t,
                                 [s["class_label"]] * x.shape[0])
            return s["classifier_scale"] * g.double().numpy()
        init = None
        if s["strength"] < 1.0:
            init = mg.init_image(shape, s["seed"])
        x, info = rd.sample(sched, den, shape, sampler=s["sampler"],
                            eta=s["eta"], variance=s["variance"],
                            has_variance=cfg["learn_sigma"], seed=s["seed"],
                            clip_denoised=s["clip_denoised"], init_image=init,
                            strength=s["strength"], cond_fn=cond_fn)
        results[dt] = x
    x = results[torch.float64]
    base = os.path.join(out, "traj-%s" % name)
    stream = rd.STREAM_IMG2IMG if init is not None else rd.STREAM_X_T
    np.save(base + ".noise.npy", ref_rng.normal_like(s["seed"], stream, shape))
    np.save(base + ".x0.npy", x.astype(np.float32))
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    g = {
        "model": os.path.basename(model_file),
        "classifier": os.path.basename(clf_file),
        "classifier_scale": repr(float(s["classifier_scale"])),
        "sampler": s["sampler"], "respacing": s["respacing"],
        "eta": repr(float(s["eta"])), "variance": s["variance"],
        "guidance": repr(float(s["guidance"])),
        "class_label": str(s["class_label"]), "seed": str(s["seed"]),
        "count": str(s["count"]), "height": str(s["height"]),
        "width": str(s["width"]),
        "clip_denoised": "true" if s["clip_denoised"] else "false",
        "strength": repr(float(s["strength"])),
    }
    if init is not None:
        np.save(base + ".init.npy", init)
        g["init_image"] = os.path.basename(base + ".init.npy")
    g["start_index"] = str(info["start_index"])
    g["start_timestep"] = str(info["start_timestep"])
    g["n_steps"] = str(info["n_steps"])
    ini["trajectory"] = g
    buf = io.StringIO()
    ini.write(buf, space_around_delimiters=False)
    with open(base + ".ini", "w") as f:
        f.write(buf.getvalue())
    # how much the guidance moved the sample: the same run unguided
    model, cfg = mg.load_model(model_file, torch.float64)
    label = s["class_label"] if cfg["num_classes"] else -1
    den = rd.model_denoiser(model, cfg, s["count"], label, s["guidance"])
    x_plain, _ = rd.sample(rd.Schedule(cfg["noise_schedule"],
                                       cfg["diffusion_steps"],
                                       s["respacing"]),
                           den, shape, sampler=s["sampler"], eta=s["eta"],
                           variance=s["variance"],
                           has_variance=cfg["learn_sigma"], seed=s["seed"],
                           clip_denoised=s["clip_denoised"], init_image=init,
                           strength=s["strength"])
    print("traj-%s: float32 reference rel. diff %.2g; guidance moved the "
          "sample by %.3g (max |x| %.3g)"
          % (name, mg.rel_err(results[torch.float32], x),
             np.abs(x - x_plain).max(), np.abs(x).max()))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    outdir = args[0] if args else os.path.join(HERE, "..", "tests", "data",
                                               "golden")
    if "--trajectories-only" not in sys.argv:
        for name in CASES:
            make_case(outdir, name)
    for name, s in TRAJECTORIES.items():
        make_trajectory(outdir, name, s)


if __name__ == "__main__":
    main()
