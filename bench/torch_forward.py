#!/usr/bin/python3
"""PyTorch side of the UNet forward benchmark (bench/run-bench.sh).

  torch_forward.py make CONFIG DIR [--seed S]
      writes DIR/model.safetensors (random weights, every parameter
      non-zero, diffref.adm_unet's randomize_) and DIR/x-B.npy,
      DIR/t-B.npy, DIR/y-B.npy for B = 1, 2 (y as float32 labels, the
      golden-data convention).  CONFIG: imagenet64, imagenet256, imagenet512,
      small32, or a JSON
      file with guided-diffusion option names.
  torch_forward.py time DIR --batch B --threads N [--repeat R] [--out F]
                   [--bf16]
      loads DIR/model.safetensors into diffref.adm_unet's ADMUNet, runs
      the forward pass on DIR/x-B.npy etc. R times after one warm-up run
      (none when R is 1), prints the best and median seconds and the peak
      RSS, and saves the output to F.
      --bf16: under torch.autocast("cpu", dtype=torch.bfloat16) (the
      convolutions and matmuls in bf16 on oneDNN), output saved as fp32.

Run torch with OPENBLAS_NUM_THREADS=1 (run-bench.sh does): torch has its
own thread pool, and OpenBLAS's threads would compete with it for the
cores (bench/README.md).
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))  # the diffref package

from diffref import adm_unet, safetensors_io  # noqa: E402

CONFIGS = {
    # guided-diffusion's ImageNet 64x64 class-conditional model
    # (64x64_diffusion.pt flags), 296 M parameters
    "imagenet64": dict(
        image_size=64, in_channels=3, model_channels=192, num_res_blocks=3,
        attention_resolutions=[32, 16, 8], channel_mult=[1, 2, 3, 4],
        num_heads=4, num_head_channels=64, num_heads_upsample=-1,
        use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=True, learn_sigma=True, num_classes=1000,
        dropout=0.0, diffusion_steps=1000, noise_schedule="cosine"),
    # guided-diffusion's ImageNet 256x256 class-conditional model
    # (256x256_diffusion.pt flags of its README: num_channels 256,
    # num_res_blocks 2, attention 32,16,8, 64 channels per head,
    # resblock_updown, scale-shift, learn_sigma, linear schedule; the
    # channel_mult create_model picks for 256 px), 554 M parameters
    "imagenet256": dict(
        image_size=256, in_channels=3, model_channels=256, num_res_blocks=2,
        attention_resolutions=[32, 16, 8], channel_mult=[1, 1, 2, 2, 4, 4],
        num_heads=4, num_head_channels=64, num_heads_upsample=-1,
        use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=False, learn_sigma=True, num_classes=1000,
        dropout=0.0, diffusion_steps=1000, noise_schedule="linear"),
    # its 512x512_diffusion.pt flags: the same with image_size 512 (mult
    # 0.5,1,1,2,2,4,4), 559 M parameters
    "imagenet512": dict(
        image_size=512, in_channels=3, model_channels=256, num_res_blocks=2,
        attention_resolutions=[32, 16, 8],
        channel_mult=[0.5, 1, 1, 2, 2, 4, 4],
        num_heads=4, num_head_channels=64, num_heads_upsample=-1,
        use_scale_shift_norm=True, resblock_updown=True,
        use_new_attention_order=False, learn_sigma=True, num_classes=1000,
        dropout=0.0, diffusion_steps=1000, noise_schedule="linear"),
    # the small 32 px RGB UNet of compute.md (about 8 M parameters)
    "small32": dict(
        image_size=32, in_channels=3, model_channels=64, num_res_blocks=2,
        attention_resolutions=[16, 8], channel_mult=[1, 2, 2],
        num_heads=4, num_head_channels=-1, num_heads_upsample=-1,
        use_scale_shift_norm=True, resblock_updown=False,
        use_new_attention_order=False, learn_sigma=True, num_classes=10,
        dropout=0.0, diffusion_steps=1000, noise_schedule="cosine"),
}


def load_config(name):
    if name in CONFIGS:
        return adm_unet.make_config(**CONFIGS[name])
    with open(name) as f:
        return adm_unet.make_config(**json.load(f))


def cmd_make(args):
    cfg = load_config(args.config)
    gen = torch.Generator().manual_seed(args.seed)
    model = adm_unet.ADMUNet(cfg)
    adm_unet.randomize_(model, gen)
    os.makedirs(args.dir, exist_ok=True)
    tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    md = adm_unet.config_to_metadata(cfg, {"description": "random weights (benchmark)"})
    safetensors_io.save_file(os.path.join(args.dir, "model.safetensors"), tensors, md)
    s = cfg["image_size"]
    for b in (1, 2):
        x = torch.randn(b, cfg["in_channels"], s, s, generator=gen)
        t = torch.tensor([999.0, 437.0][:b])
        y = torch.tensor([7.0, 901.0][:b]) % max(cfg["num_classes"], 1)
        np.save(os.path.join(args.dir, "x-%d.npy" % b), x.numpy())
        np.save(os.path.join(args.dir, "t-%d.npy" % b), t.numpy())
        np.save(os.path.join(args.dir, "y-%d.npy" % b), y.numpy().astype(np.float32))
    n = sum(v.size for v in tensors.values())
    print("wrote %s: %d tensors, %.2f M parameters"
          % (args.dir, len(tensors), n / 1e6))


def cmd_time(args):
    torch.set_num_threads(args.threads)
    tensors, md = safetensors_io.load_file(os.path.join(args.dir, "model.safetensors"))
    cfg = adm_unet.config_from_metadata(md)
    model = adm_unet.ADMUNet(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    model.eval()
    b = args.batch
    x = torch.from_numpy(np.load(os.path.join(args.dir, "x-%d.npy" % b)))
    t = torch.from_numpy(np.load(os.path.join(args.dir, "t-%d.npy" % b)))
    y = None
    if cfg["num_classes"] > 0:
        y = torch.from_numpy(np.load(os.path.join(args.dir, "y-%d.npy" % b))).long()
    times = []
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        if args.repeat > 1:
            out = model(x, t, y)                   # warm-up
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = model(x, t, y)
            times.append(time.perf_counter() - t0)
    if args.out:
        np.save(args.out, out.float().numpy())
    print("torch %s batch %d threads %d: best %.4f s median %.4f s (%d runs), "
          "peak RSS %.1f MiB"
          % ("bf16" if args.bf16 else "fp32", b, args.threads, min(times),
             statistics.median(times), len(times),
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("config")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("time")
    t.add_argument("dir")
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--out")
    t.add_argument("--bf16", action="store_true")
    args = p.parse_args()
    {"make": cmd_make, "time": cmd_time}[args.cmd](args)


if __name__ == "__main__":
    main()
