#!/usr/bin/python3
"""Convert a guided-diffusion / improved-diffusion PyTorch checkpoint (.pt
state dict) into gimp-diffusion's safetensors model file.

    tools/convert_checkpoint.py 64x64_diffusion.pt $MODEL_FLAGS \\
        $DIFFUSION_FLAGS -o adm64.safetensors
    tools/convert_checkpoint.py cifar10_uncond_50M_500K.pt \\
        --defaults improved-diffusion $MODEL_FLAGS $DIFFUSION_FLAGS \\
        -o cifar10.safetensors

MODEL_FLAGS and DIFFUSION_FLAGS are those of the checkpoint's README, spelled
the same way (--attention_resolutions 32,16,8 --class_cond True ...).  Flags
not given take the model_and_diffusion_defaults() of --defaults
guided-diffusion (the default) or --defaults improved-diffusion; the two
differ in rescale_timesteps (False / True), which the weights cannot reveal,
and in channel_mult at 32 px (none / 1,2,2,2).  When rescale_timesteps comes
from the defaults while the flags look like the other codebase's, a loud
warning says so.  Additions: --in_channels, --num_classes (overrides
class_cond's 1000), --null-class, --class-names, --dtype,
--description/--license/--source.  Sampling- and training-only flags
(--timestep_respacing, --use_fp16, --use_checkpoint, --use_kl,
--rescale_learned_sigmas, --dropout; improved-diffusion's --sigma_small,
which only gets a note) are accepted and do not change the file.

The file's first bytes must be torch.save's (a zip archive or a pickle);
it is then read with torch.load(weights_only=True) (torch >= 1.13), which
unpickles only tensors and plain containers, never arbitrary code.
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

from diffref.adm_unet import (ADMUNet, channel_mult_for_size,
                              config_to_metadata)
from diffref.classifier import (EncoderUNet, classifier_config_to_metadata,
                                make_classifier_config)
from diffref.safetensors_io import save_file

GD_NUM_CLASSES = 1000   # both codebases' class_cond means ImageNet-1k

# model_and_diffusion_defaults() of each codebase's script_util.py, plus what
# its create_model / create_gaussian_diffusion fix for options it has no
# flag for (improved-diffusion: no num_head_channels, channel_mult,
# resblock_updown, use_new_attention_order, use_fp16; guided-diffusion: no
# sigma_small, create_gaussian_diffusion's default False).  The UNet options
# agree; what differs is rescale_timesteps (the network sees t x 1000/T),
# rescale_learned_sigmas (training loss only) and channel_mult at 32 px.
_SHARED_DEFAULTS = dict(
    image_size=64, num_channels=128, num_res_blocks=2, num_heads=4,
    num_heads_upsample=-1, num_head_channels=-1,
    attention_resolutions="16,8", channel_mult="", dropout=0.0,
    class_cond=False, use_checkpoint=False, use_scale_shift_norm=True,
    resblock_updown=False, use_fp16=False, use_new_attention_order=False,
    learn_sigma=False, sigma_small=False, diffusion_steps=1000,
    noise_schedule="linear", timestep_respacing="", use_kl=False,
    predict_xstart=False)
DEFAULTS = {
    "guided-diffusion": dict(_SHARED_DEFAULTS, rescale_timesteps=False,
                             rescale_learned_sigmas=False),
    "improved-diffusion": dict(_SHARED_DEFAULTS, rescale_timesteps=True,
                               rescale_learned_sigmas=True),
}
# Flags only one codebase's argparse has (giving one to the other codebase's
# defaults hints that the flags were copied from the wrong README).
ONLY_IN = {
    "guided-diffusion": ("num_head_channels", "channel_mult",
                         "resblock_updown", "use_fp16",
                         "use_new_attention_order"),
    "improved-diffusion": ("sigma_small",),
}
# improved_diffusion/script_util.py create_model's channel_mult by image size
IMPROVED_CHANNEL_MULT = {256: [1, 1, 2, 2, 4, 4], 64: [1, 2, 3, 4],
                         32: [1, 2, 2, 2]}


def str2bool(v):
    s = v.lower()
    if s in ("yes", "true", "t", "y", "1"):
        return True
    if s in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("boolean value expected, got %r" % v)


def build_parser():
    p = argparse.ArgumentParser(
        description="Convert a guided-diffusion or improved-diffusion .pt "
                    "checkpoint to a gimp-diffusion .safetensors model.")
    p.add_argument("checkpoint", help="guided-/improved-diffusion .pt "
                                      "state dict")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")
    p.add_argument("--defaults", choices=sorted(DEFAULTS), default=None,
                   help="whose model_and_diffusion_defaults() fill the flags "
                        "not given (default guided-diffusion; "
                        "improved-diffusion differs in rescale_timesteps "
                        "True and channel_mult 1,2,2,2 at 32 px)")
    # The codebases' MODEL_FLAGS / DIFFUSION_FLAGS.  None = not given: the
    # value then comes from DEFAULTS[--defaults].
    ints = ("image_size", "num_channels", "num_res_blocks", "num_heads",
            "num_heads_upsample", "num_head_channels", "diffusion_steps")
    bools = ("class_cond", "use_checkpoint", "use_scale_shift_norm",
             "resblock_updown", "use_fp16", "use_new_attention_order",
             "learn_sigma", "sigma_small", "use_kl", "predict_xstart",
             "rescale_timesteps", "rescale_learned_sigmas")
    for k in ints:
        p.add_argument("--" + k, type=int)
    for k in bools:
        p.add_argument("--" + k, type=str2bool)
    p.add_argument("--attention_resolutions")
    p.add_argument("--channel_mult")
    p.add_argument("--dropout", type=float)
    p.add_argument("--noise_schedule", choices=["linear", "cosine"])
    p.add_argument("--timestep_respacing")
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


def apply_defaults(a):
    """Fills the flags not given from DEFAULTS[a.defaults]; returns the set
    of flags given explicitly."""
    if a.defaults is None:
        a.defaults = "guided-diffusion"
    given = set()
    for k, v in DEFAULTS[a.defaults].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
        else:
            given.add(k)
    return given


class ConvertError(Exception):
    pass


class NoChannelMult(ConvertError):
    """channel_mult not given and the chosen codebase has no default for the
    image size; convert() adds what the checkpoint says."""


def resolve_channel_mult(a):
    if a.channel_mult == "":
        if a.defaults == "improved-diffusion":
            if a.image_size in IMPROVED_CHANNEL_MULT:
                return list(IMPROVED_CHANNEL_MULT[a.image_size])
            raise NoChannelMult(
                "improved-diffusion has no channel_mult default for "
                "--image_size %d (its create_model knows 32, 64, 256): give "
                "--channel_mult" % a.image_size)
        try:
            return channel_mult_for_size(a.image_size)
        except ValueError:
            raise NoChannelMult(
                "guided-diffusion has no channel_mult default for "
                "--image_size %d (its create_model knows 64, 128, 256, 512): "
                "give --channel_mult" % a.image_size)
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
    return mult


def _fmt(mult):
    return ",".join("%g" % m for m in mult)


def rescale_warning(a, given):
    """The loud warning for a rescale_timesteps that came from the defaults
    while the flags look like the other codebase's: the weights cannot tell
    (the network just sees t or t x 1000/T), so a wrong value would convert
    silently and sample wrongly.  None when there is nothing to warn of."""
    if "rescale_timesteps" in given:
        return None
    clues = []
    if a.defaults == "guided-diffusion":
        other = "improved-diffusion"
        if a.diffusion_steps == 4000:
            clues.append("--diffusion_steps 4000 (improved-diffusion's "
                         "models use 4000 steps, guided-diffusion's 1000)")
    else:
        other = "guided-diffusion"
        if a.image_size not in IMPROVED_CHANNEL_MULT:
            clues.append("--image_size %d (improved-diffusion's "
                         "create_model supports 32, 64, 256 only)"
                         % a.image_size)
    only = ["--" + k for k in ONLY_IN[other] if k in given]
    if only:
        clues.append("%s (flag%s only %s has)" % (
            ", ".join(only), "s" if len(only) > 1 else "", other))
    if not clues:
        return None
    mine = DEFAULTS[a.defaults]["rescale_timesteps"]
    return "\n".join([
        "WARNING: rescale_timesteps was not given and the flags look like "
        "%s's:" % other,
        "  " + "; ".join(clues) + ".",
        "  Using %s's default, rescale_timesteps %s; %s's default is %s.  "
        "The weights cannot tell which is right, and the wrong one "
        "converts fine but samples badly." % (
            a.defaults, mine, other, not mine),
        "  Say which: --defaults %s (or --rescale_timesteps %s) if %s "
        "trained it, --rescale_timesteps %s to keep this." % (
            other, not mine, other, mine)])


def config_from_args(a, given):
    if a.predict_xstart:
        raise ConvertError("--predict_xstart True: the engine samples "
                           "epsilon-prediction models only")
    notes = []
    if a.timestep_respacing:
        notes.append("--timestep_respacing %s ignored: respacing is chosen "
                     "at sampling time" % a.timestep_respacing)
    if a.sigma_small and not a.learn_sigma:
        notes.append("--sigma_small True: a model file cannot record the "
                     "fixed variance, and `diffuse sample` uses fixed-large "
                     "by default; sample with --variance fixed-small")
    mult = resolve_channel_mult(a)
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
    nrb = infer_num_res_blocks(sd)
    if nrb and nrb != cfg["num_res_blocks"]:
        h.append("its first downsample block says --num_res_blocks %d" % nrb)
    mult = infer_channel_mult(sd, nrb or cfg["num_res_blocks"])
    if mult and mult != cfg["channel_mult"]:
        h.append("its input blocks say --channel_mult %s" % _fmt(mult))
    return h


def infer_num_res_blocks(sd):
    """num_res_blocks from the first plain downsample block (a conv
    input_blocks.N.0.op, N = num_res_blocks + 1); None with
    resblock_updown, whose downsample blocks are ResBlocks, or one level."""
    ops = [int(k.split(".")[1]) for k in sd
           if k.startswith("input_blocks.") and k.endswith(".0.op.weight")]
    return min(ops) - 1 if ops and min(ops) > 1 else None


def infer_channel_mult(sd, num_res_blocks):
    """channel_mult read off the checkpoint's input blocks, assuming
    num_res_blocks: input block 0 is the stem conv, then each level has
    num_res_blocks ResBlocks and (all but the last) one downsample block,
    so there are levels x (num_res_blocks + 1) blocks; level l's width is
    the out channels of its first ResBlock.  None when that does not fit."""
    try:
        mc = sd["time_embed.0.weight"].shape[1]
        n_in = len({int(k.split(".")[1]) for k in sd
                    if k.startswith("input_blocks.")})
        if num_res_blocks < 1 or n_in % (num_res_blocks + 1):
            return None
        mult = []
        for lvl in range(n_in // (num_res_blocks + 1)):
            i = 1 + lvl * (num_res_blocks + 1)
            ch = sd["input_blocks.%d.0.out_layers.3.weight" % i].shape[0]
            m = ch / mc
            mult.append(int(m) if m == int(m) else m)
        return mult
    except (KeyError, IndexError, ValueError, ZeroDivisionError):
        return None


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


def sniff(path):
    """None when the file starts as torch.save writes: a zip archive
    (torch >= 1.6) or a pickle (the legacy format: protocol 2 opcode 0x80 2,
    then the pickled magic number 0x1950a86a20f9469cfc6c).  Otherwise what
    the file looks like instead."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise ConvertError("%s: no such file" % path)
    except OSError as e:
        raise ConvertError("cannot read %s: %s" % (path, e.strerror or e))
    if head[:4] == b"PK\x03\x04":
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return None
    kinds = ((b"\x89PNG\r\n\x1a\n", "it is a PNG image"),
             (b"\xff\xd8\xff", "it is a JPEG image"),
             (b"GIF8", "it is a GIF image"),
             (b"\x1f\x8b", "it is gzip-compressed: unpack it first"),
             (b"PK", "it is a zip archive, but not one torch.save wrote"),
             (b"version https://git-lfs", "it is a Git LFS pointer, not the "
              "file itself: git lfs pull"),
             (b"\x7fELF", "it is an executable"))
    for magic, what in kinds:
        if head.startswith(magic):
            return what
    if not head:
        return "the file is empty"
    if len(head) > 8 and head[8:9] == b"{" and \
            int.from_bytes(head[:8], "little") < 100_000_000:
        return "it is a safetensors file, not a .pt state dict"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "it is a tar archive (torch before 1.0 wrote those; re-save " \
               "it with torch.save from a current torch)"
    if head.lstrip()[:1] == b"<":
        return "it is HTML or XML text, e.g. an error page saved by a " \
               "failed download"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "its first bytes are %s" % head[:8].hex(" ")


def _load_error(path, e):
    """A ConvertError for torch.load's exception e that never passes on
    torch's advice to retry with weights_only=False (that would run
    whatever code the pickle holds)."""
    msg = str(e).strip()
    if "WeightsUnpickler error:" in msg:
        why = msg.split("WeightsUnpickler error:", 1)[1].strip()
        if why.startswith("Unsupported class "):
            return ConvertError(
                "%s: refused: its pickle refers to %s, which a state dict "
                "of tensors never does (only tensors and plain containers "
                "are unpickled, so nothing was run)"
                % (path, why[len("Unsupported class "):].strip()))
        return ConvertError("%s is not a PyTorch checkpoint (its pickle "
                            "data is damaged: %s)" % (path, why))
    first = msg.splitlines()[0] if msg else type(e).__name__
    if "weights_only" in first or "trusted source" in first:
        first = type(e).__name__
    return ConvertError("%s: cannot load the checkpoint, it is damaged or "
                        "truncated (%s)" % (path, first))


def load_state_dict(path):
    what = sniff(path)
    if what:
        raise ConvertError("%s is not a PyTorch checkpoint (%s)"
                           % (path, what))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # unpickling errors come in many types
        raise _load_error(path, e)
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


def _channel_mult_advice(a, sd):
    """What the checkpoint says when channel_mult has no default."""
    nrb = infer_num_res_blocks(sd) or a.num_res_blocks
    mult = infer_channel_mult(sd, nrb)
    improved = (a.defaults == "guided-diffusion"
                and IMPROVED_CHANNEL_MULT.get(a.image_size))
    if not mult:
        s = ("the checkpoint's %d input blocks do not fit --num_res_blocks "
             "%d, so its channel_mult cannot be read off them"
             % (len({k.split(".")[1] for k in sd
                     if k.startswith("input_blocks.")}), nrb))
        if improved:
            s += ("; improved-diffusion's %d px default is %s (--defaults "
                  "improved-diffusion)" % (a.image_size, _fmt(improved)))
        return s
    s = "the checkpoint's input blocks say --channel_mult %s" % _fmt(mult)
    if nrb != a.num_res_blocks:
        s += " with --num_res_blocks %d" % nrb
    if improved == mult:
        s += (", improved-diffusion's %d px default: for an improved-"
              "diffusion checkpoint add --defaults improved-diffusion (it "
              "also sets improved-diffusion's rescale_timesteps True), for "
              "a guided-diffusion run --channel_mult %s" % (a.image_size,
                                                           _fmt(mult)))
    return s


def convert(argv):
    a = build_parser().parse_args(argv)
    given = apply_defaults(a)
    try:
        cfg, notes = config_from_args(a, given)
    except NoChannelMult as e:
        sd = load_state_dict(a.checkpoint)
        raise ConvertError("%s;\n  %s" % (e, _channel_mult_advice(a, sd)))
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
    warning = rescale_warning(a, given)
    if warning:
        print("convert_checkpoint: " + warning, file=sys.stderr)
    print("%s: %d tensors, %.1fM parameters, %s, %s classes, "
          "rescale_timesteps %s (%s defaults) -> %s"
          % (a.checkpoint, len(tensors), n_params / 1e6, dt,
             cfg["num_classes"] or "no", cfg["rescale_timesteps"],
             a.defaults, a.output))
    return 0


# ---------------------------------------------------------------------------
# Classifiers (--classifier): guided-diffusion's EncoderUNetModel

# guided-diffusion's classifier_defaults(), with its classifier_ prefixes
CLASSIFIER_DEFAULTS = dict(
    image_size=64, classifier_width=128, classifier_depth=2,
    classifier_attention_resolutions="32,16,8",
    classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
    classifier_pool="attention", classifier_use_fp16=False)


def build_classifier_parser():
    p = argparse.ArgumentParser(
        prog="convert_checkpoint.py CLF.pt --classifier",
        description="Convert a guided-diffusion noisy-image classifier "
                    "(EncoderUNetModel .pt state dict) to a gimp-diffusion "
                    ".safetensors classifier file.  Flags as in "
                    "guided-diffusion's README; the class count is read "
                    "from the checkpoint.")
    p.add_argument("checkpoint")
    p.add_argument("--classifier", action="store_true", required=True)
    p.add_argument("-o", "--output", required=True)
    d = CLASSIFIER_DEFAULTS
    p.add_argument("--image_size", type=int, default=d["image_size"])
    p.add_argument("--classifier_width", type=int,
                   default=d["classifier_width"])
    p.add_argument("--classifier_depth", type=int,
                   default=d["classifier_depth"])
    p.add_argument("--classifier_attention_resolutions",
                   default=d["classifier_attention_resolutions"])
    for k in ("classifier_use_scale_shift_norm", "classifier_resblock_updown",
              "classifier_use_fp16"):
        p.add_argument("--" + k, type=str2bool, default=d[k])
    p.add_argument("--classifier_pool", choices=["attention", "adaptive"],
                   default=d["classifier_pool"])
    # Ours
    p.add_argument("--in_channels", type=int, default=3)
    p.add_argument("--channel_mult", default="",
                   help="per-level widths (guided-diffusion's "
                        "create_classifier has a table for 64, 128, 256 "
                        "and 512 px only)")
    p.add_argument("--diffusion_steps", type=int,
                   help="T of the diffusion the classifier was trained "
                        "for (recorded; sampling then checks the model's)")
    p.add_argument("--noise_schedule", choices=["linear", "cosine"])
    p.add_argument("--class-names", dest="class_names")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--description")
    p.add_argument("--license")
    p.add_argument("--source")
    return p


def _read_class_names(path, n):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConvertError("cannot read --class-names: %s" % e)
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConvertError("%s: bad JSON: %s" % (path, e))
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not all(isinstance(x, str) for x in names):
        raise ConvertError("%s: class names must be strings" % path)
    if len(names) != n:
        raise ConvertError("%s holds %d class names; the classifier has %d "
                           "classes" % (path, len(names), n))
    return names


def classifier_classes(sd, pool):
    """The number of classes: the rows of the output head's last layer."""
    key = "out.2.c_proj.weight" if pool == "attention" else "out.3.weight"
    if key not in sd:
        other = "adaptive" if pool == "attention" else "attention"
        okey = "out.3.weight" if pool == "attention" else "out.2.c_proj.weight"
        if okey in sd:
            raise ConvertError("the checkpoint has no %s but has %s: "
                               "--classifier_pool %s" % (key, okey, other))
        if "out.2.weight" in sd and "label_emb.weight" in sd or \
                any(k.startswith("output_blocks.") for k in sd):
            raise ConvertError("this is a diffusion UNet (it has "
                               "output_blocks), not a classifier: convert "
                               "it without --classifier")
        raise ConvertError("the checkpoint has no %s: not a classifier "
                           "with --classifier_pool %s" % (key, pool))
    return int(sd[key].shape[0])


def convert_classifier(argv):
    a = build_classifier_parser().parse_args(argv)
    try:
        attn = [int(r) for r in
                a.classifier_attention_resolutions.split(",") if r.strip()]
    except ValueError:
        raise ConvertError("--classifier_attention_resolutions %r is not a "
                           "list of integers"
                           % a.classifier_attention_resolutions)
    if a.channel_mult == "":
        try:
            mult = channel_mult_for_size(a.image_size)
        except ValueError:
            raise ConvertError("guided-diffusion's create_classifier has no "
                               "channel_mult for --image_size %d (it knows "
                               "64, 128, 256, 512): give --channel_mult"
                               % a.image_size)
    else:
        a.defaults = "guided-diffusion"
        mult = resolve_channel_mult(a)
    # guided-diffusion silently skips resolutions the encoder never
    # reaches (its defaults 32,16,8 at a small size): so do we, noisily
    reached = [a.image_size >> lvl for lvl in range(len(mult))]
    dropped = [r for r in attn if r not in reached]
    attn = [r for r in attn if r in reached]
    sd = load_state_dict(a.checkpoint)
    n_classes = classifier_classes(sd, a.classifier_pool)
    try:
        cfg = make_classifier_config(
            image_size=a.image_size, in_channels=a.in_channels,
            model_channels=a.classifier_width, out_channels=n_classes,
            num_res_blocks=a.classifier_depth, attention_resolutions=attn,
            channel_mult=mult, num_heads=1, num_head_channels=64,
            use_scale_shift_norm=a.classifier_use_scale_shift_norm,
            resblock_updown=a.classifier_resblock_updown,
            use_new_attention_order=False, pool=a.classifier_pool)
    except ValueError as e:
        raise ConvertError("flags describe no valid classifier: %s" % e)
    if a.diffusion_steps:
        cfg["diffusion_steps"] = a.diffusion_steps
    if a.noise_schedule:
        cfg["noise_schedule"] = a.noise_schedule
    if a.class_names:
        cfg["class_names"] = _read_class_names(a.class_names, n_classes)
    try:
        with _skip_init():
            want = {k: tuple(v.shape)
                    for k, v in EncoderUNet(cfg).state_dict().items()}
    except ValueError as e:
        s = tuple(sd["time_embed.0.weight"].shape) \
            if "time_embed.0.weight" in sd else None
        hint = ("; the checkpoint says --classifier_width %d" % s[1]
                if s and s[1] != a.classifier_width else "")
        raise ConvertError("flags describe no valid classifier: %s%s"
                           % (e, hint))
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [(k, tuple(sd[k].shape), want[k]) for k in want
             if k in sd and tuple(sd[k].shape) != want[k]]
    if missing or unexpected or wrong:
        lines = ["the checkpoint does not match the classifier the flags "
                 "describe:"]
        for title, items in (("missing", missing),
                             ("unexpected", unexpected)):
            if items:
                lines.append("  %d %s tensors, e.g. %s"
                             % (len(items), title, ", ".join(items[:4])))
        if wrong:
            lines.append("  %d tensors with other shapes, e.g. %s" % (
                len(wrong), "; ".join("%s is %s, expected %s" % w
                                      for w in wrong[:3])))
        s = tuple(sd["input_blocks.0.0.weight"].shape) \
            if "input_blocks.0.0.weight" in sd else None
        if s and s[1] != a.in_channels:
            lines.append("  hint: the checkpoint takes %d input channels: "
                         "--in_channels %d" % (s[1], s[1]))
        s = tuple(sd["time_embed.0.weight"].shape) \
            if "time_embed.0.weight" in sd else None
        if s and s[1] != a.classifier_width:
            lines.append("  hint: --classifier_width %d" % s[1])
        raise ConvertError("\n".join(lines))
    for k, v in sd.items():
        if not torch.isfinite(v).all():
            raise ConvertError("tensor %s holds NaN or Inf" % k)
    extra = {}
    for key in ("description", "license"):
        if getattr(a, key):
            extra[key] = getattr(a, key)
    extra["source"] = a.source or os.path.basename(a.checkpoint)
    md = classifier_config_to_metadata(cfg, extra)
    dt = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[a.dtype]
    tensors = {k: sd[k].detach().float().numpy() for k in want}
    try:
        save_file(a.output, tensors, md, dtype=dt)
    except OSError as e:
        raise ConvertError("cannot write %s: %s" % (a.output, e))
    n_params = sum(int(np.prod(t.shape)) for t in tensors.values())
    if dropped:
        print("note: attention resolution%s %s dropped: the classifier never "
              "works at %s px (guided-diffusion ignores them too)"
              % ("s" if len(dropped) > 1 else "",
                 ",".join(map(str, dropped)),
                 " or ".join(map(str, dropped))), file=sys.stderr)
    print("%s: classifier, %d tensors, %.1fM parameters, %s, %d classes, "
          "pool %s -> %s" % (a.checkpoint, len(tensors), n_params / 1e6, dt,
                             n_classes, a.classifier_pool, a.output))
    return 0


def main():
    try:
        if "--classifier" in sys.argv[1:]:
            return convert_classifier(sys.argv[1:])
        return convert(sys.argv[1:])
    except ConvertError as e:
        print("convert_checkpoint: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
