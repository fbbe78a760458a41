#!/usr/bin/python3
"""Export trained weights to a gimp-diffusion model file (safetensors).

    tools/train/export.py --checkpoint models/training/fashion/checkpoint.pt \
        [--out models/fashion.safetensors] [--weights ema|model] [--dtype F32]

Tensor names are guided-diffusion's UNetModel state_dict keys (diffref.adm_unet
keeps them); __metadata__ holds every model option, diffusion_steps,
noise_schedule, rescale_timesteps, class_names (JSON, including the null
class's name), null_class and the free-text description / license / source
(docs/DESIGN.md, "Model file"), plus training_step.  The file is written
under a temporary name and renamed, so readers never see half a file.
"""
import argparse
import os
import sys


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))  # the diffref package

from diffref import adm_unet, safetensors_io  # noqa: E402

MAX_BYTES = 25 * 1000 * 1000


def export_state(state_dict, model_cfg, train_cfg, step, path, dtype=None):
    extra = {}
    for k in ("description", "license", "source"):
        if train_cfg.get(k):
            extra[k] = train_cfg[k]
    extra["training_step"] = str(int(step))
    md = adm_unet.config_to_metadata(model_cfg, extra)
    tensors = {k: v.detach().cpu().float().numpy()
               for k, v in state_dict.items()}
    n_bytes = sum(a.size for a in tensors.values()) * 4
    dtype = dtype or train_cfg.get("export_dtype", "F32")
    if dtype == "F32" and n_bytes > MAX_BYTES:
        dtype = "F16"   # the repository limit is 25 MB per shipped model
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    safetensors_io.save_file(tmp, tensors, md, dtype=dtype)
    os.replace(tmp, path)
    return path


def main():
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default=None,
                    help="default: the config's export path")
    ap.add_argument("--weights", choices=("ema", "model"), default="ema")
    ap.add_argument("--dtype", choices=("F32", "F16", "BF16"), default=None)
    args = ap.parse_args()
    st = torch.load(args.checkpoint)
    cfg = st["config"]
    out = args.out or cfg["export"]
    if not os.path.isabs(out):
        out = os.path.join(ROOT, out)
    export_state(st[args.weights], st["model_config"], cfg, st["step"], out,
                 args.dtype)
    print("wrote %s (%s weights, step %d, %d bytes)"
          % (out, args.weights, st["step"], os.path.getsize(out)))


if __name__ == "__main__":
    main()
