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
  * ref_diffusion (when present): schedules, respacing and sampler steps
    against GaussianDiffusion / SpacedDiffusion.
"""

import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from adm_unet import ADMUNet, make_config, randomize_  # noqa: E402

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


def main():
    if len(sys.argv) != 2:
        print("usage: %s GUIDED_DIFFUSION_DIR" % sys.argv[0], file=sys.stderr)
        return 2
    sys.path.insert(0, sys.argv[1])
    worst = check_unet(None)
    ok = worst < 1e-5
    print("worst relative error %.2e: %s" % (worst, "OK" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
