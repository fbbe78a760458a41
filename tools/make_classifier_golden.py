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
"""

import os
import sys

import numpy as np
import torch

from diffref.adm_unet import randomize_
from diffref.classifier import (EncoderUNet, classifier_config_from_metadata,
                                classifier_config_to_metadata, grad_log_prob,
                                make_classifier_config)
from diffref.safetensors_io import load_file, save_file

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


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        HERE, "..", "tests", "data", "golden")
    for name in CASES:
        make_case(outdir, name)


if __name__ == "__main__":
    main()
