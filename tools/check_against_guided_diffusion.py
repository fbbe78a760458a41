#!/usr/bin/python3
"""Developer cross-check (not part of the test suite): compares our own
reference code with openai/guided-diffusion, imported from a checkout given
on the command line (its code is never copied into this project).

    tools/check_against_guided_diffusion.py /path/to/guided-diffusion

The path must contain the guided_diffusion package.  If its fp16_util
import of logger/mpi4py fails, a scratch copy with a two-function
fp16_util shim works (convert_module_to_f16/f32 are unused in float32).

Checks:
  * ADMUNet: same random state_dict loaded into both networks (strict, so
    key names and shapes must be identical), outputs compared for several
    configurations.
  * diffref.diffusion: β schedules, respacing, and whole DDIM / DDPM
    trajectories (toy denoiser, our PRNG's noise fed to guided-diffusion
    through randn_like) against GaussianDiffusion / SpacedDiffusion.
"""

import sys

import numpy as np
import torch

from diffref.adm_unet import ADMUNet, make_config, randomize_

UNET_CASES = [
    # name, overrides, input H, W
    ("legacy-heads2-ss-conv", dict(image_size=16, in_channels=1,
     model_channels=32, num_res_blocks=1, channel_mult=[1, 2],
     attention_resolutions=[8], num_heads=2, num_classes=5,
     use_scale_shift_norm=True), 16, 16),
    ("new-headch-updown-sigma", dict(image_size=32, in_channels=4,
     model_channels=32, num_res_blocks=2, channel_mult=[1, 2, 2],
     attention_resolutions=[16, 8], num_head_channels=16, num_heads_upsample=4,
     use_new_attention_order=True, resblock_updown=True, learn_sigma=True,
     use_scale_shift_norm=True), 32, 32),
    ("uncond-noss-rgb", dict(image_size=16, in_channels=3, model_channels=32,
     num_res_blocks=1, channel_mult=[1, 1, 2], attention_resolutions=[4],
     num_heads=1, use_scale_shift_norm=False), 16, 16),
    ("grey-alpha-3lvl-nonsquare", dict(image_size=32, in_channels=2,
     model_channels=32, num_res_blocks=1, channel_mult=[1, 2, 3],
     attention_resolutions=[16], num_heads=4, num_heads_upsample=2,
     use_new_attention_order=False, resblock_updown=True, num_classes=3,
     use_scale_shift_norm=True), 16, 32),
    ("legacy-headch-noss-updown-sigma", dict(image_size=16, in_channels=3,
     model_channels=64, num_res_blocks=1, channel_mult=[0.5, 1],
     attention_resolutions=[16, 8], num_head_channels=8,
     use_scale_shift_norm=False, resblock_updown=True, learn_sigma=True,
     num_classes=10), 16, 16),
]


def check_unet(gd):
    from guided_diffusion.unet import UNetModel
    worst = 0.0
    for name, over, H, W in UNET_CASES:
        cfg = make_config(**over)
        ours = ADMUNet(cfg).eval()
        randomize_(ours, torch.Generator().manual_seed(1))
        theirs = UNetModel(
            image_size=cfg["image_size"], in_channels=cfg["in_channels"],
            model_channels=cfg["model_channels"],
            out_channels=cfg["out_channels"],
            num_res_blocks=cfg["num_res_blocks"],
            attention_resolutions=tuple(cfg["image_size"] // r for r in
                                        cfg["attention_resolutions"]),
            channel_mult=tuple(cfg["channel_mult"]),
            num_classes=cfg["num_classes"] or None,
            num_heads=cfg["num_heads"],
            num_head_channels=cfg["num_head_channels"],
            num_heads_upsample=cfg["num_heads_upsample"],
            use_scale_shift_norm=cfg["use_scale_shift_norm"],
            resblock_updown=cfg["resblock_updown"],
            use_new_attention_order=cfg["use_new_attention_order"]).eval()
        sd = ours.state_dict()
        theirs_sd = theirs.state_dict()
        assert list(sd.keys()) == list(theirs_sd.keys()), "key order differs"
        for k in sd:
            assert sd[k].shape == theirs_sd[k].shape, k
        theirs.load_state_dict(sd, strict=True)
        g = torch.Generator().manual_seed(2)
        B = 2
        x = torch.randn(B, cfg["in_channels"], H, W, generator=g)
        t = torch.tensor([3.0, 871.0])
        y = (torch.tensor([1, cfg["num_classes"] - 1])
             if cfg["num_classes"] else None)
        with torch.no_grad():
            a = ours(x, t, y)
            b = theirs(x, t, y)
        err = (a - b).abs().max().item() / max(1.0, b.abs().max().item())
        worst = max(worst, err)
        print("unet %-34s params %7d  |out| %.3g  rel err %.2e"
              % (name, sum(p.numel() for p in sd.values()),
                 b.abs().max().item(), err))
    return worst


def check_diffusion():
    """Schedules, respacing and whole sampler trajectories (toy denoiser,
    our PRNG's noise fed to guided-diffusion through randn_like)."""
    from diffref import diffusion as rd
    from diffref import rng as ref_rng
    from guided_diffusion import gaussian_diffusion as gdm
    from guided_diffusion.respace import SpacedDiffusion, space_timesteps
    worst = 0.0
    for kind in ("linear", "cosine"):
        for T in (1000, 100, 37):
            a = rd.betas_for(kind, T)
            b = gdm.get_named_beta_schedule(kind, T)
            worst = max(worst, float(np.abs(a - b).max()))
    specs = ["", "ddim10", "ddim25", "ddim50", "10", "5,5", "10,15,20", "250",
             "1", "3,1,7", "ddim1000", "1000"]
    n_spec = 0
    for T in (1000, 100, 30):
        for spec in specs:
            try:
                want = sorted(space_timesteps(T, spec)) if spec else list(range(T))
            except ValueError:
                want = None
            try:
                got = rd.space_timesteps(T, spec)
            except ValueError:
                got = None
            if want != got:
                print("respacing T=%d %r differs: %s vs %s" % (T, spec, got, want))
                worst = max(worst, 1.0)
            n_spec += 1
    print("schedules and %d respacings compared" % n_spec)

    C, H, W, B = 2, 3, 4, 2

    def toy(x, t_model, learn):
        # A smooth, t-dependent stand-in for a network: ε and raw variance.
        t = np.asarray(t_model, np.float64).reshape(-1, 1, 1, 1)
        eps = np.tanh(1.3 * x + 0.002 * t) + 0.3 * np.sin(x * 2.0 + 1.0)
        if not learn:
            return eps
        return np.concatenate([eps, np.tanh(x - 0.001 * t)], axis=1)

    class GDModel(torch.nn.Module):
        def __init__(self, learn):
            super().__init__()
            self.learn = learn
            self.dummy = torch.nn.Parameter(torch.zeros(1))  # gd reads .device

        def forward(self, x, t, **kw):
            return torch.from_numpy(toy(x.numpy(), t.numpy(), self.learn))

    cases = [
        ("ddim", 0.0, "linear", "ddim10", "fixed-large", True),
        ("ddim", 0.7, "cosine", "ddim25", "fixed-large", True),
        ("ddim", 0.0, "cosine", "7,3", "fixed-large", False),
        ("ddpm", 0.0, "cosine", "5,5", "learned", True),
        ("ddpm", 0.0, "linear", "20", "fixed-small", True),
        ("ddpm", 0.0, "linear", "10,5", "fixed-large", True),
        ("ddpm", 0.0, "cosine", "ddim20", "learned", False),
    ]
    seed = 1234
    for sampler, eta, kind, spec, var, clip in cases:
        T = 1000
        learn = var == "learned"
        sched = rd.Schedule(kind, T, spec)
        shape = (B, C, H, W)
        vt = {"learned": gdm.ModelVarType.LEARNED_RANGE,
              "fixed-small": gdm.ModelVarType.FIXED_SMALL,
              "fixed-large": gdm.ModelVarType.FIXED_LARGE}[var]
        diff = SpacedDiffusion(
            use_timesteps=space_timesteps(T, spec),
            betas=gdm.get_named_beta_schedule(kind, T),
            model_mean_type=gdm.ModelMeanType.EPSILON, model_var_type=vt,
            loss_type=gdm.LossType.MSE)
        noises = [torch.from_numpy(
            ref_rng.normal_like(seed, rd.STREAM_STEP0 + i, shape)
            .astype(np.float64)) for i in range(sched.n - 1, -1, -1)]
        orig = torch.randn_like
        torch.randn_like = lambda x, _q=noises: _q.pop(0)
        orig_extract = gdm._extract_into_tensor

        def extract64(arr, t, shape):
            # guided-diffusion casts its float64 tables to float32 here;
            # keep float64 so both sides can agree to ~1e-12.
            res = torch.from_numpy(arr)[t].double()
            while res.dim() < len(shape):
                res = res[..., None]
            return res.expand(shape)
        gdm._extract_into_tensor = extract64
        try:
            x_T = torch.from_numpy(ref_rng.normal_like(seed, rd.STREAM_X_T,
                                                       shape).astype(np.float64))
            if sampler == "ddim":
                theirs = diff.ddim_sample_loop(GDModel(learn), shape, noise=x_T,
                                               clip_denoised=clip, eta=eta)
            else:
                theirs = diff.p_sample_loop(GDModel(learn), shape, noise=x_T,
                                            clip_denoised=clip)
        finally:
            torch.randn_like = orig
            gdm._extract_into_tensor = orig_extract

        def den(x, i, t_model):
            out = toy(x, np.full(B, t_model), learn)
            return (out[:, :C], out[:, C:]) if learn else (out, None)
        ours, _ = rd.sample(sched, den, shape, sampler=sampler, eta=eta,
                            variance=var, has_variance=learn, seed=seed,
                            clip_denoised=clip)
        err = float(np.abs(ours - theirs.numpy()).max()
                    / max(1.0, np.abs(ours).max()))
        worst = max(worst, err)
        print("traj %-4s eta %.1f %-6s %-7s %-11s clip %-5s |x| %.3g err %.2e"
              % (sampler, eta, kind, spec, var, clip,
                 float(np.abs(ours).max()), err))
    return worst


def main():
    if len(sys.argv) != 2:
        print("usage: %s GUIDED_DIFFUSION_DIR" % sys.argv[0], file=sys.stderr)
        return 2
    sys.path.insert(0, sys.argv[1])
    worst = check_unet(None)
    ok = worst < 1e-5
    dworst = check_diffusion()
    print("diffusion worst relative error %.2e" % dworst)
    ok = ok and dworst < 1e-8
    print("unet worst relative error %.2e; overall: %s" % (worst, "OK" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
