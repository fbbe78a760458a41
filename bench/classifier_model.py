#!/usr/bin/python3
"""Writes random-weight classifiers for bench-classifier (every parameter
non-zero, diffref.adm_unet.randomize_) and, with --torch, times PyTorch's
forward pass and gradient (autograd of log softmax[y] wrt x) on the same
weights for comparison.

    bench/classifier_model.py [DIR] [--torch]   (default /tmp/diffuse-bench)

Configurations:
  imagenet64: guided-diffusion's 64x64 ImageNet classifier as its README
    runs it (classifier_defaults + --classifier_depth 4: width 128, mult
    1,2,3,4, attention at 32,16,8 px, 64 channels per head, scale-shift,
    resblock_updown, attention pool, 1000 classes)
  small32: a 32 px grey classifier of the size that suits the shipped
    models (width 32, mult 1,2,2, 2 res blocks, attention at 8 px,
    scale-shift, resblock_updown, attention pool, 10 classes)
"""

import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))  # the diffref package

from diffref.adm_unet import randomize_  # noqa: E402
from diffref.classifier import (EncoderUNet,  # noqa: E402
                                classifier_config_to_metadata, grad_log_prob,
                                make_classifier_config)
from diffref.safetensors_io import save_file  # noqa: E402

CONFIGS = {
    "imagenet64": dict(image_size=64, model_channels=128, num_res_blocks=4,
                       out_channels=1000),
    # 256x256_classifier.pt as the README runs it: width 128, depth 2,
    # attention 32,16,8, attention pool, resblock_updown, scale-shift
    # (mult 1,1,2,2,4,4 for 256 px), 54 M parameters
    "imagenet256": dict(image_size=256, model_channels=128, num_res_blocks=2,
                        out_channels=1000),
    "small32": dict(image_size=32, in_channels=1, model_channels=32,
                    num_res_blocks=2, channel_mult=[1, 2, 2],
                    attention_resolutions=[8], num_head_channels=32,
                    out_channels=10),
}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = args[0] if args else "/tmp/diffuse-bench"
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    for name, over in CONFIGS.items():
        cfg = make_classifier_config(**over)
        torch.manual_seed(0)
        model = randomize_(EncoderUNet(cfg))
        path = os.path.join(out, "clf-%s.safetensors" % name)
        if not os.path.exists(path):
            save_file(path, {k: v.detach().numpy() for k, v in
                             model.state_dict().items()},
                      classifier_config_to_metadata(cfg))
        n = sum(p.numel() for p in model.parameters())
        print("%s: %.1f M parameters -> %s" % (name, n / 1e6, path))
        if "--torch" in sys.argv:
            s = cfg["image_size"]
            x = torch.rand(1, cfg["in_channels"], s, s) * 2 - 1
            t = torch.tensor([500.0])
            with torch.no_grad():
                model(x, t)
                t0 = time.perf_counter()
                for _ in range(3):
                    model(x, t)
                fw = (time.perf_counter() - t0) / 3
            grad_log_prob(model, x, t, [1])
            t0 = time.perf_counter()
            for _ in range(3):
                grad_log_prob(model, x, t, [1])
            gr = (time.perf_counter() - t0) / 3
            print("  torch (2 threads): forward %.4f s, gradient %.4f s "
                  "(%.2fx)" % (fw, gr, gr / fw))


if __name__ == "__main__":
    main()
