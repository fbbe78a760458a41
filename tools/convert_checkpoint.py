#!/usr/bin/python3
"""Convert a guided-diffusion / improved-diffusion PyTorch checkpoint (.pt
state dict) into gimp-diffusion's safetensors model file.

    tools/convert_checkpoint.py 64x64_diffusion.pt $MODEL_FLAGS \\
        $DIFFUSION_FLAGS -o adm64.safetensors

MODEL_FLAGS and DIFFUSION_FLAGS are guided-diffusion README's, spelled the
same way (--attention_resolutions 32,16,8 --class_cond True ...), with
model_and_diffusion_defaults() as defaults.  Additions: --in_channels,
--num_classes (overrides class_cond's 1000), --null-class, --class-names,
--dtype, --description/--license/--source.  Sampling-only flags
(--timestep_respacing, --use_fp16, --use_checkpoint, --use_kl,
--rescale_learned_sigmas) are accepted and do not change the file.

The checkpoint is read with torch.load(weights_only=True) (torch >= 1.13),
which unpickles only tensors and plain containers, never arbitrary code.
The state dict is checked against the architecture the flags describe;
mismatches are reported with hints and exit status 1.
"""

import argparse
import json
import os
import sys
from contextlib import contextmanager

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adm_unet import (ADMUNet, channel_mult_for_size,  # noqa: E402
                      config_to_metadata)
from safetensors_io import save_file  # noqa: E402

GD_NUM_CLASSES = 1000   # guided-diffusion's class_cond means ImageNet-1k


def str2bool(v):
    s = v.lower()
    if s in ("yes", "true", "t", "y", "1"):
        return True
    if s in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("boolean value expected, got %r" % v)


def build_parser():
    p = argparse.ArgumentParser(
        description="Convert a guided-diffusion .pt checkpoint to a "
                    "gimp-diffusion .safetensors model.")
    p.add_argument("checkpoint", help="guided-diffusion .pt state dict")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    # model_and_diffusion_defaults(), guided-diffusion/script_util.py
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--num_channels", type=int, default=128)
    p.add_argument("--num_res_blocks", type=int, default=2)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--num_heads_upsample", type=int, default=-1)
    p.add_argument("--num_head_channels", type=int, default=-1)
    p.add_argument("--attention_resolutions", default="16,8")
    p.add_argument("--channel_mult", default="")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--class_cond", type=str2bool, default=False)
    p.add_argument("--use_checkpoint", type=str2bool, default=False)
    p.add_argument("--use_scale_shift_norm", type=str2bool, default=True)
    p.add_argument("--resblock_updown", type=str2bool, default=False)
    p.add_argument("--use_fp16", type=str2bool, default=False)
    p.add_argument("--use_new_attention_order", type=str2bool, default=False)
    p.add_argument("--learn_sigma", type=str2bool, default=False)
    p.add_argument("--diffusion_steps", type=int, default=1000)
    p.add_argument("--noise_schedule", default="linear",
                   choices=["linear", "cosine"])
    p.add_argument("--timestep_respacing", default="")
    p.add_argument("--use_kl", type=str2bool, default=False)
    p.add_argument("--predict_xstart", type=str2bool, default=False)
    p.add_argument("--rescale_timesteps", type=str2bool, default=False)
    p.add_argument("--rescale_learned_sigmas", type=str2bool, default=False)
    # Ours
    p.add_argument("--in_channels", type=int, default=3)
    p.add_argument("--num_classes", type=int, default=None,
                   help="class count including any null class (default: "
                        "1000 with --class_cond True, else 0)")
    p.add_argument("--null-class", dest="null_class", type=int, default=-1,
                   help="index of the 'no label' class used for "
                        "classifier-free guidance")
    p.add_argument("--class-names", dest="class_names",
                   help="file with one class name per line, or a JSON array")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--description")
    p.add_argument("--license")
    p.add_argument("--source")
    return p


class ConvertError(Exception):
    pass


def config_from_args(a):
    if a.predict_xstart:
        raise ConvertError("--predict_xstart True: the engine samples "
                           "epsilon-prediction models only")
    notes = []
    if a.timestep_respacing:
        notes.append("--timestep_respacing %s ignored: respacing is chosen "
                     "at sampling time" % a.timestep_respacing)
    if a.channel_mult == "":
        try:
            mult = channel_mult_for_size(a.image_size)
        except ValueError as e:
            raise ConvertError(str(e))
    else:
        # guided-diffusion's own flag takes integers only, but its 512 px
        # default is fractional (0.5,1,1,2,2,4,4); level channels are
        # int(mult * num_channels) either way.
        try:
            mult = [float(m) if "." in m else int(m)
                    for m in a.channel_mult.split(",")]
        except ValueError:
            mult = None
        if not mult or not all(0 < m < float("inf") for m in mult):
            raise ConvertError("--channel_mult %r is not a list of positive "
                               "numbers" % a.channel_mult)
    try:
        attn = [int(r) for r in a.attention_resolutions.split(",")
                if r.strip()]
    except ValueError:
        raise ConvertError("--attention_resolutions %r is not a list of "
                           "integers" % a.attention_resolutions)
    if a.num_classes is not None:
        num_classes = a.num_classes
    else:
        num_classes = GD_NUM_CLASSES if a.class_cond else 0
    if a.num_classes is not None and a.num_classes > 0 and not a.class_cond:
        notes.append("--num_classes %d implies a class-conditional model"
                     % a.num_classes)
    cfg = {
        "image_size": a.image_size,
        "in_channels": a.in_channels,
        "model_channels": a.num_channels,
        "out_channels": a.in_channels * (2 if a.learn_sigma else 1),
        "num_res_blocks": a.num_res_blocks,
        "attention_resolutions": attn,
        "channel_mult": mult,
        "num_heads": a.num_heads,
        "num_head_channels": a.num_head_channels,
        "num_heads_upsample": a.num_heads_upsample,
        "use_scale_shift_norm": a.use_scale_shift_norm,
        "resblock_updown": a.resblock_updown,
        "use_new_attention_order": a.use_new_attention_order,
        "learn_sigma": a.learn_sigma,
        "num_classes": num_classes,
        "dropout": 0.0,   # inference file; dropout is a training option
        "diffusion_steps": a.diffusion_steps,
        "noise_schedule": a.noise_schedule,
        "rescale_timesteps": a.rescale_timesteps,
        "null_class": a.null_class,
    }
    if a.null_class != -1 and not 0 <= a.null_class < num_classes:
        raise ConvertError("--null-class %d is not a class index (model has "
                           "%d classes)" % (a.null_class, num_classes))
    if a.class_names:
        try:
            with open(a.class_names, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConvertError("cannot read --class-names: %s" % e)
        if text.lstrip().startswith("["):
            try:
                names = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConvertError("%s: bad JSON: %s" % (a.class_names, e))
        else:
            names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not all(isinstance(n, str) for n in names):
            raise ConvertError("%s: class names must be strings"
                               % a.class_names)
        if len(names) != num_classes:
            raise ConvertError("%s holds %d class names; the model has %d "
                               "classes" % (a.class_names, len(names),
                                            num_classes))
        cfg["class_names"] = names
    return cfg, notes


@contextmanager
def _skip_init():
    """Build a module without initialising its weights (torch.empty only),
    so checking a 300M-parameter layout costs no time and little memory."""
    names = ("kaiming_uniform_", "uniform_", "normal_", "ones_", "zeros_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda t, *a, **k: t)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def expected_shapes(cfg):
    """name -> shape of the state dict ADMUNet(cfg) has (same order)."""
    with _skip_init():
        try:
            model = ADMUNet(cfg)
        except ValueError as e:
            raise ConvertError("flags describe no valid model: %s" % e)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _hints(sd, cfg):
    """What the checkpoint itself says about the flags it needs."""
    h = []

    def shape(k):
        return tuple(sd[k].shape) if k in sd else None
    s = shape("input_blocks.0.0.weight")
    if s and s[1] != cfg["in_channels"]:
        h.append("checkpoint takes %d input channels: --in_channels %d"
                 % (s[1], s[1]))
    if s and s[0] != int(cfg["channel_mult"][0] * cfg["model_channels"]):
        h.append("first conv has %d channels (--num_channels x "
                 "channel_mult[0])" % s[0])
    s = shape("out.2.weight")
    if s and s[0] != cfg["out_channels"]:
        h.append("checkpoint outputs %d channels: --learn_sigma %s"
                 % (s[0], "True" if s[0] == 2 * cfg["in_channels"] else "?"))
    s = shape("label_emb.weight")
    if s and cfg["num_classes"] != s[0]:
        h.append("checkpoint has label_emb for %d classes: --class_cond True"
                 "%s" % (s[0], "" if s[0] == GD_NUM_CLASSES
                         else " --num_classes %d" % s[0]))
    if not s and cfg["num_classes"]:
        h.append("checkpoint has no label_emb: --class_cond False")
    s = shape("time_embed.0.weight")
    if s and s[1] != cfg["model_channels"]:
        h.append("checkpoint has %d model channels: --num_channels %d"
                 % (s[1], s[1]))
    s = shape("input_blocks.1.0.emb_layers.1.weight")
    o = shape("input_blocks.1.0.out_layers.0.weight")
    if s and o:
        ss = s[0] == 2 * o[0]
        if ss != cfg["use_scale_shift_norm"]:
            h.append("emb_layers width says --use_scale_shift_norm %s" % ss)
    n_in = len({k.split(".")[1] for k in sd if k.startswith("input_blocks.")})
    h.append("checkpoint has %d input blocks" % n_in)
    return h


def validate(sd, cfg):
    """Raises ConvertError describing every mismatch between the state dict
    and the architecture cfg describes."""
    want = expected_shapes(cfg)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [(k, tuple(sd[k].shape), want[k]) for k in want
             if k in sd and tuple(sd[k].shape) != want[k]]
    if not (missing or unexpected or wrong):
        return
    lines = ["the checkpoint does not match the model the flags describe:"]
    for title, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            lines.append("  %d %s tensors, e.g. %s" % (len(items), title,
                                                      ", ".join(items[:4])))
    if wrong:
        lines.append("  %d tensors with other shapes, e.g. %s" % (
            len(wrong), "; ".join("%s is %s, expected %s" % w
                                  for w in wrong[:3])))
    lines += ["  hint: " + h for h in _hints(sd, cfg)]
    raise ConvertError("\n".join(lines))


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConvertError("%s: no such file" % path)
    except Exception as e:   # unpickling errors come in many types
        raise ConvertError("%s: not a loadable weights-only checkpoint (%s)"
                           % (path, str(e).splitlines()[0]
                              if str(e) else type(e).__name__))
    if isinstance(obj, dict) and not all(torch.is_tensor(v)
                                         for v in obj.values()):
        for key in ("state_dict", "model", "ema"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            torch.is_tensor(v) for v in obj.values()):
        raise ConvertError("%s: expected a state dict (name -> tensor)" % path)
    for k, v in obj.items():
        if not v.is_floating_point():
            raise ConvertError("%s: tensor %s has non-float dtype %s"
                               % (path, k, v.dtype))
    return obj


def convert(argv):
    a = build_parser().parse_args(argv)
    cfg, notes = config_from_args(a)
    sd = load_state_dict(a.checkpoint)
    validate(sd, cfg)
    for k, v in sd.items():
        if not torch.isfinite(v).all():
            raise ConvertError("tensor %s holds NaN or Inf" % k)
    order = list(expected_shapes(cfg))
    extra = {}
    for key in ("description", "license"):
        if getattr(a, key):
            extra[key] = getattr(a, key)
    extra["source"] = a.source or os.path.basename(a.checkpoint)
    md = config_to_metadata(cfg, extra)
    dt = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[a.dtype]
    tensors = {k: sd[k].detach().float().numpy() for k in order}
    if dt == "F16":
        big = max(float(np.abs(t).max()) for t in tensors.values())
        if big > 65504:
            raise ConvertError("a weight of magnitude %g does not fit F16; "
                               "use --dtype f32 or bf16" % big)
    try:
        save_file(a.output, tensors, md, dtype=dt)
    except OSError as e:
        raise ConvertError("cannot write %s: %s" % (a.output, e))
    n_params = sum(int(np.prod(t.shape)) for t in tensors.values())
    for n in notes:
        print("note: " + n, file=sys.stderr)
    print("%s: %d tensors, %.1fM parameters, %s, %s classes -> %s"
          % (a.checkpoint, len(tensors), n_params / 1e6, dt,
             cfg["num_classes"] or "no", a.output))
    return 0


def main():
    try:
        return convert(sys.argv[1:])
    except ConvertError as e:
        print("convert_checkpoint: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
