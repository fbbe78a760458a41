#!/usr/bin/python3
"""Classifier guidance checked from the outside (issue 11).

    tools/eval/check_classifier_guidance.py trajectory \
        [--model models/fashion.safetensors] \
        [--classifier models/fashion-classifier.safetensors] \
        [--class 1] [--scale 2] [--steps 5] [--sampler ddim|ddpm] [--eta 1] \
        [--respacing STR] [--count 2] [--seed 0] [--precision fp32,auto]
    tools/eval/check_classifier_guidance.py gradient [--data fashion] \
        [--per-t 100] [--json out.json]

trajectory: a classifier-guided run of `diffuse sample` (the C engine)
against a float64 PyTorch run written here from guided-diffusion's
formulas (gaussian_diffusion.py p_mean_variance / condition_mean /
condition_score / ddim_sample / p_sample, respace.py SpacedDiffusion and
_WrappedModel: the respaced ᾱ, the classifier called with the ORIGINAL
timestep of each kept step, rescaled by 1000/T only when the model has
rescale_timesteps).  Only the networks come from tools/diffref (the
reference UNet and EncoderUNet, loaded from the safetensors); the
schedule, the steps and the gradient (torch autograd of
log softmax(logits)[y]) are computed here.  The same x_T and step noise
as the engine (tools/diffref/rng.py, streams 0 and 2 + i).  Prints the
largest difference of the engine's result from the reference, and how far
guidance moved the reference (the same run with s = 0), per precision.

gradient: on held-out test images noised to x_t at several t, the RMS per
pixel of ∇x log p(y|x_t) (the noisy classifier, through `diffuse
classify --grad-out`, compared with torch autograd), what
sqrt(1 - ᾱ)·s·∇ is beside ε (RMS 1) for s = 0.5, 1, 2, and whether a small
step x_t + δ·∇/RMS(∇) raises the noisy classifier's p(y|x_t) and the clean
evaluation classifier's p(y | x̂0) of the diffusion model's denoised
prediction x̂0(x_t) (tools/eval/classifiers/<data>.safetensors), against
a random step of the same size.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)

from diffref import rng as ref_rng  # noqa: E402
from diffref.adm_unet import ADMUNet, config_from_metadata  # noqa: E402
from diffref.classifier import (EncoderUNet,  # noqa: E402
                                classifier_config_from_metadata)
from diffref.diffusion import space_timesteps  # noqa: E402
from diffref.safetensors_io import load_file  # noqa: E402
from evaluate import find_diffuse  # noqa: E402

STREAM_X_T, STREAM_STEP0 = 0, 2


# -- guided-diffusion's schedule (gaussian_diffusion.py, respace.py) --------

def cosine_betas(T, max_beta=0.999):
    """get_named_beta_schedule("cosine"): betas_for_alpha_bar with
    ᾱ(t) = cos²((t + 0.008)/1.008 · π/2)."""
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa
    return np.array([min(1 - f((i + 1) / T) / f(i / T), max_beta)
                     for i in range(T)], dtype=np.float64)


def linear_betas(T):
    scale = 1000.0 / T
    return np.linspace(scale * 0.0001, scale * 0.02, T, dtype=np.float64)


class Spaced:
    """SpacedDiffusion: kept original steps, the respaced betas
    1 - ᾱ_t/ᾱ_{t_prev}, and the derived arrays of GaussianDiffusion."""

    def __init__(self, schedule, T, steps):
        base = cosine_betas(T) if schedule == "cosine" else linear_betas(T)
        abar_full = np.cumprod(1.0 - base)
        self.timestep_map = sorted(space_timesteps(T, str(steps)))
        last, betas = 1.0, []
        for t in self.timestep_map:
            betas.append(1.0 - abar_full[t] / last)
            last = abar_full[t]
        b = np.array(betas)
        self.betas = b
        self.abar = np.cumprod(1.0 - b)
        self.abar_prev = np.append(1.0, self.abar[:-1])
        self.post_var = b * (1.0 - self.abar_prev) / (1.0 - self.abar)
        self.post_logvar_clipped = np.log(
            np.append(self.post_var[1], self.post_var[1:]))
        self.coef1 = b * np.sqrt(self.abar_prev) / (1.0 - self.abar)
        self.coef2 = (1.0 - self.abar_prev) * np.sqrt(1.0 - b) / \
            (1.0 - self.abar)


def load_unet(path):
    tensors, md = load_file(path)
    cfg = config_from_metadata(md)
    net = ADMUNet(cfg)
    net.load_state_dict({k: torch.from_numpy(np.array(v))
                         for k, v in tensors.items()})
    return net.double().eval(), cfg


def load_encoder(path, dtype=torch.float64):
    tensors, md = load_file(path)
    net = EncoderUNet(classifier_config_from_metadata(md))
    net.load_state_dict({k: torch.from_numpy(np.array(v))
                         for k, v in tensors.items()})
    return net.to(dtype).eval()


def grad_log_p(clf, x, t, y):
    """∇x log softmax(clf(x, t))[y] and log p(y|x), guided-diffusion's
    cond_fn (classifier_sample.py) before its classifier_scale factor."""
    dt = next(clf.parameters()).dtype
    with torch.enable_grad():
        xi = torch.as_tensor(x, dtype=dt).detach().requires_grad_(True)
        lp = F.log_softmax(clf(xi, torch.as_tensor(t, dtype=dt)), dim=-1)
        sel = lp[torch.arange(xi.shape[0]), torch.as_tensor(y).long()]
        g = torch.autograd.grad(sel.sum(), xi)[0]
    return g.detach().double().numpy(), sel.detach().double().numpy()


# -- trajectory --------------------------------------------------------------

def reference_sample(unet, cfg, clf, sp, label, scale, sampler, eta, count,
                     seed, log=None):
    """guided-diffusion's sampling loop in float64.  log (a list): per
    step, the RMS of s·∇ and of what guidance adds to x_{t-1}."""
    C, H = cfg["in_channels"], cfg["image_size"]
    shape = (count, C, H, H)
    n = int(np.prod(shape))
    x = ref_rng.normal(seed, STREAM_X_T, 0, n).reshape(shape)
    t_scale = (1000.0 / cfg["diffusion_steps"]
               if cfg.get("rescale_timesteps") else 1.0)
    for i in range(len(sp.betas) - 1, -1, -1):
        t_orig = sp.timestep_map[i]          # _WrappedModel's map_tensor[ts]
        tt = torch.full((count,), t_orig * t_scale, dtype=torch.float64)
        yy = torch.full((count,), label, dtype=torch.long)
        with torch.no_grad():
            out = unet(torch.from_numpy(x), tt, yy).numpy()
        eps, raw = out[:, :C], out[:, C:]
        abar = sp.abar[i]
        # p_mean_variance: learned range variance, x̂0 clipped to [-1, 1]
        frac = (raw + 1.0) / 2.0
        logvar = frac * np.log(sp.betas[i]) + \
            (1.0 - frac) * sp.post_logvar_clipped[i]
        x0 = np.clip(np.sqrt(1.0 / abar) * x -
                     np.sqrt(1.0 / abar - 1.0) * eps, -1.0, 1.0)
        mean = sp.coef1[i] * x0 + sp.coef2[i] * x
        if scale > 0:
            g, _ = grad_log_p(clf, x, tt, [label] * count)
            g = scale * g
        noise = (ref_rng.normal(seed, STREAM_STEP0 + i, 0, n).reshape(shape)
                 if i > 0 else np.zeros(shape))
        shift = None
        if sampler == "ddpm":
            if scale > 0:                    # condition_mean
                shift = np.exp(logvar) * g
                mean = mean + shift
            x = mean + (np.exp(0.5 * logvar) * noise if i > 0 else 0.0)
        else:
            ap = sp.abar_prev[i]
            sigma = eta * np.sqrt((1 - ap) / (1 - abar)) * \
                np.sqrt(1 - abar / ap)
            if scale > 0:                    # condition_score
                e = (np.sqrt(1.0 / abar) * x - x0) / \
                    np.sqrt(1.0 / abar - 1.0)
                e = e - np.sqrt(1.0 - abar) * g
                x0g = np.sqrt(1.0 / abar) * x - np.sqrt(1.0 / abar - 1.0) * e
                # x_{t-1} = sqrt(ᾱ')·x̂0 + sqrt(1-ᾱ'-σ²)·ε: guidance's part
                shift = np.sqrt(ap) * (x0g - x0) - \
                    np.sqrt(max(1 - ap - sigma ** 2, 0.0)) * \
                    np.sqrt(1.0 - abar) * g
                x0 = x0g
            # ddim_sample
            e = (np.sqrt(1.0 / abar) * x - x0) / np.sqrt(1.0 / abar - 1.0)
            x = x0 * np.sqrt(ap) + np.sqrt(1 - ap - sigma ** 2) * e + \
                (sigma * noise if i > 0 else 0.0)
        if log is not None and shift is not None:
            log.append({"i": i, "t": t_orig, "abar": float(abar),
                        "s_grad_rms": float(rms(g)),
                        "shift_rms": float(rms(shift)),
                        "x_rms": float(rms(x))})
    return x


def spacing(a):
    """The respacing both runs use: --respacing, else what the engine takes
    for --steps N with a classifier: "ddimN" for DDIM (sample.c's
    schedule_for, issue 11), the even "N" for DDPM.  The engine gets it
    explicitly, so that its s = 0 run (no classifier) is spaced alike."""
    if a.respacing:
        return a.respacing
    return ("ddim%d" if a.sampler == "ddim" else "%d") % a.steps


def engine_sample(diffuse, a, label, scale, precision, out):
    cmd = [diffuse, "sample", "--model", a.model, "--class", str(label),
           "--respacing", spacing(a), "--sampler", a.sampler,
           "--guidance", "0",
           "--eta", str(a.eta), "--seed", str(a.seed), "--count",
           str(a.count), "--threads", "1", "--precision", precision,
           "--out-npy", out, "--quiet"]
    if scale > 0:
        cmd += ["--classifier", a.classifier, "--classifier-scale",
                str(scale)]
    subprocess.run(cmd, check=True)
    return np.load(out).astype(np.float64)


def cmd_trajectory(a):
    diffuse = find_diffuse(a.diffuse)
    unet, cfg = load_unet(a.model)
    clf = load_encoder(a.classifier)
    sp = Spaced(cfg["noise_schedule"], cfg["diffusion_steps"], spacing(a))
    log = []
    ref = reference_sample(unet, cfg, clf, sp, a.label, a.scale, a.sampler,
                           a.eta, a.count, a.seed, log)
    for r in log:
        print("step t=%4d abar %.3g: RMS s*grad %.3g, guidance moves x_t-1 "
              "by RMS %.3g (x_t-1 RMS %.3g)" % (r["t"], r["abar"],
                                                r["s_grad_rms"],
                                                r["shift_rms"], r["x_rms"]))
    if a.reference_only:
        return {"steps": log}
    ref0 = reference_sample(unet, cfg, clf, sp, a.label, 0.0, a.sampler,
                            a.eta, a.count, a.seed)
    moved = float(np.abs(ref - ref0).max())
    res = {"sampler": a.sampler, "steps": a.steps,
           "respacing": spacing(a), "eta": a.eta,
           "scale": a.scale, "class": a.label,
           "guidance_moved_max": moved,
           "guidance_moved_rms": float(np.sqrt(np.mean((ref - ref0) ** 2)))}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in a.precision.split(","):
            for s, r in ((a.scale, ref), (0.0, ref0)):
                e = engine_sample(diffuse, a, a.label, s, prec,
                                  os.path.join(tmp, "x.npy"))
                e = e.reshape(r.shape)
                d = np.abs(e - r)
                res["%s_s%g_max_diff" % (prec, s)] = float(d.max())
                res["%s_s%g_rms_diff" % (prec, s)] = float(
                    np.sqrt(np.mean(d ** 2)))
    print(json.dumps(res, indent=1))
    return res


# -- gradient ----------------------------------------------------------------

def diffuse_grad(diffuse, clf_path, x, t, y, precision):
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda n: os.path.join(tmp, n)  # noqa
        np.save(p("x.npy"), x.astype(np.float32))
        np.save(p("t.npy"), np.asarray(t, dtype=np.float32))
        np.save(p("y.npy"), np.asarray(y, dtype=np.float32))
        subprocess.run([diffuse, "classify", "--model", clf_path, "--input",
                        p("x.npy"), "--timestep", p("t.npy"), "--class",
                        p("y.npy"), "--out", p("l.npy"), "--grad-out",
                        p("g.npy"), "--precision", precision,
                        "--threads", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        return np.load(p("g.npy")).astype(np.float64)


def rms(a, axis=None):
    return np.sqrt(np.mean(np.square(a), axis=axis))


def cmd_gradient(a):
    import classifier as eval_clf
    diffuse = find_diffuse(a.diffuse)
    d = np.load(os.path.join(ROOT, "tools", "train", "cache",
                             a.data + ".npz"))
    unet, cfg = load_unet(a.model)
    clf = load_encoder(a.classifier)
    clean, _ = eval_clf.load(os.path.join(HERE, "classifiers",
                                          a.data + ".safetensors"))
    abar_full = np.cumprod(1.0 - cosine_betas(cfg["diffusion_steps"]))
    g = np.random.default_rng(a.seed)
    idx = g.choice(len(d["test_y"]), a.per_t, replace=False)
    x0 = d["test_x"][idx].astype(np.float64) / 127.5 - 1.0
    y = d["test_y"][idx]
    rows = []
    for t in [int(s) for s in a.timesteps.split(",")]:
        ab = abar_full[t]
        eps = g.standard_normal(x0.shape)
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        tt = np.full(len(y), float(t))
        gr, lp = grad_log_p(clf, xt, tt, y)
        ge = {p: diffuse_grad(diffuse, a.classifier, xt, tt, y, p)
              for p in a.precision.split(",")}
        r = {"t": t, "abar": float(ab), "n": int(len(y)),
             "noisy_clf_acc": None,
             "grad_rms": float(rms(gr)),
             "grad_rms_per_image_median": float(np.median(
                 rms(gr, axis=(1, 2, 3)))),
             "grad_rms_per_image_max": float(rms(gr, axis=(1, 2, 3)).max())}
        for p, e in ge.items():
            r["engine_%s_grad_rel_err" % p] = float(rms(e - gr) / rms(gr))
            r["engine_%s_grad_cos" % p] = float(
                np.sum(e * gr) / math.sqrt(np.sum(e * e) * np.sum(gr * gr)))
        for s in (0.5, 1.0, 2.0):
            r["eps_shift_rms_s%g" % s] = float(math.sqrt(1 - ab) * s *
                                               rms(gr))
            # condition_score: x̂0 moves by (1 - ᾱ)/sqrt(ᾱ)·s·∇
            r["x0_shift_rms_s%g" % s] = float((1 - ab) / math.sqrt(ab) * s *
                                              rms(gr))
        # a step of RMS δ along ∇ (per image) against a random one
        with torch.no_grad():
            logits = clf(torch.from_numpy(xt), torch.from_numpy(tt))
        r["noisy_clf_acc"] = float((logits.argmax(1).numpy() == y).mean())
        unit = gr / rms(gr, axis=(1, 2, 3))[:, None, None, None]
        rnd = g.standard_normal(xt.shape)
        rnd /= rms(rnd, axis=(1, 2, 3))[:, None, None, None]
        base = eval_probs(unet, cfg, clf, clean, xt, tt, y)
        r["p_noisy_before"], r["p_clean_x0_before"] = base[:2]
        for delta in [float(s) for s in a.deltas.split(",")]:
            up = eval_probs(unet, cfg, clf, clean, xt + delta * unit, tt, y)
            rn = eval_probs(unet, cfg, clf, clean, xt + delta * rnd, tt, y)
            r["delta%g" % delta] = {"p_noisy_grad": up[0],
                                    "p_clean_x0_grad": up[1],
                                    "acc_clean_x0_grad": up[2],
                                    "p_noisy_random": rn[0],
                                    "p_clean_x0_random": rn[1]}
        r["acc_clean_x0_before"] = base[2]
        print(json.dumps(r), flush=True)
        rows.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


def eval_probs(unet, cfg, clf, clean, x, tt, y):
    """mean p(y|x_t) of the noisy classifier; mean p(y|x̂0) and accuracy
    of the clean evaluation classifier on the model's x̂0(x_t, y)."""
    C = cfg["in_channels"]
    t = torch.from_numpy(tt)
    ab = None
    with torch.no_grad():
        pn = F.softmax(clf(torch.from_numpy(x), t), -1)[
            torch.arange(len(y)), torch.from_numpy(y)].mean().item()
        eps = unet(torch.from_numpy(x), t,
                   torch.from_numpy(y.astype(np.int64))).numpy()[:, :C]
        abar_full = np.cumprod(1.0 - cosine_betas(cfg["diffusion_steps"]))
        ab = abar_full[int(tt[0])]
        x0 = np.clip((x - np.sqrt(1 - ab) * eps) / np.sqrt(ab), -1, 1)
        lc = clean(torch.from_numpy(x0).float())
        pc = F.softmax(lc, -1)[torch.arange(len(y)),
                               torch.from_numpy(y)].mean().item()
        acc = float((lc.argmax(1).numpy() == y).mean())
    return pn, pc, acc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("trajectory", "gradient"))
    ap.add_argument("--model", default="models/fashion.safetensors")
    ap.add_argument("--classifier",
                    default="models/fashion-classifier.safetensors")
    ap.add_argument("--diffuse", default=None)
    ap.add_argument("--class", dest="label", type=int, default=1)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    ap.add_argument("--respacing", default=None,
                    help="trajectory: guided-diffusion timestep_respacing "
                    "of both runs (default: ddimN for DDIM, as the engine "
                    "spaces classifier-guided DDIM's --steps N; N for "
                    "DDPM); \"50\" is the even spacing with t = 999")
    ap.add_argument("--eta", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp32,auto")
    ap.add_argument("--data", default="fashion")
    ap.add_argument("--per-t", type=int, default=100)
    ap.add_argument("--timesteps", default="50,200,400,600,800,950")
    ap.add_argument("--deltas", default="0.05,0.2")
    ap.add_argument("--json", default=None)
    ap.add_argument("--reference-only", action="store_true",
                    help="trajectory: only the reference's per-step log")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.what == "trajectory":
        cmd_trajectory(a)
    else:
        cmd_gradient(a)


if __name__ == "__main__":
    main()
