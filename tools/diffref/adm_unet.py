"""ADM UNet (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs"), written
from the architecture description for gimp-diffusion's reference side.

The module tree is laid out so that state_dict() keys and shapes are exactly
those of openai/guided-diffusion's UNetModel: published checkpoints load with
no renaming, and the C engine (engine/unet.c) binds the same names.

    input_blocks.0.0                 conv3x3 in_channels -> ch0
    input_blocks.N.0                 ResBlock (or Downsample / down-ResBlock)
    input_blocks.N.1                 AttentionBlock (when ds in attention set)
    middle_block.{0,1,2}             ResBlock, AttentionBlock, ResBlock
    output_blocks.N.{0,1,2}          ResBlock [, AttentionBlock] [, Upsample]
    out.{0,2}                        GroupNorm, conv3x3 ch0 -> out_channels
    time_embed.{0,2}                 Linear, Linear (SiLU between)
    label_emb                        Embedding (class-conditional only)

Config dicts use guided-diffusion's option names; attention_resolutions is
a list of PIXEL resolutions (as on guided-diffusion's command line), and
channel_mult is always explicit.  config_from_metadata / config_to_metadata
translate to and from the safetensors __metadata__ strings described in
docs/DESIGN.md ("Model file").
"""

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GROUPS = 32          # GroupNorm groups, fixed in ADM
GN_EPS = 1e-5        # torch.nn.GroupNorm default, used by ADM

# ---------------------------------------------------------------------------
# Configuration


MODEL_KEYS = (
    "image_size", "in_channels", "model_channels", "out_channels",
    "num_res_blocks", "attention_resolutions", "channel_mult", "num_heads",
    "num_head_channels", "num_heads_upsample", "use_scale_shift_norm",
    "resblock_updown", "use_new_attention_order", "learn_sigma",
    "num_classes", "dropout",
)

BOOL_KEYS = ("use_scale_shift_norm", "resblock_updown",
             "use_new_attention_order", "learn_sigma", "rescale_timesteps")
INT_KEYS = ("image_size", "in_channels", "model_channels", "out_channels",
            "num_res_blocks", "num_heads", "num_head_channels",
            "num_heads_upsample", "num_classes", "diffusion_steps")


def default_config():
    """guided-diffusion's model_and_diffusion_defaults, in our naming
    (num_channels -> model_channels, class_cond -> num_classes), for a
    3-channel 64x64 model.  channel_mult "" resolves as in create_model."""
    return {
        "image_size": 64,
        "in_channels": 3,
        "model_channels": 128,
        "out_channels": 3,
        "num_res_blocks": 2,
        "attention_resolutions": [16, 8],
        "channel_mult": channel_mult_for_size(64),
        "num_heads": 4,
        "num_head_channels": -1,
        "num_heads_upsample": -1,
        "use_scale_shift_norm": True,
        "resblock_updown": False,
        "use_new_attention_order": False,
        "learn_sigma": False,
        "num_classes": 0,
        "dropout": 0.0,
        "diffusion_steps": 1000,
        "noise_schedule": "linear",
        "rescale_timesteps": False,
    }


def channel_mult_for_size(image_size):
    """channel_mult="" as guided-diffusion's script_util.create_model
    resolves it."""
    table = {
        512: [0.5, 1, 1, 2, 2, 4, 4],
        256: [1, 1, 2, 2, 4, 4],
        128: [1, 1, 2, 3, 4],
        64: [1, 2, 3, 4],
    }
    if image_size not in table:
        raise ValueError("channel_mult \"\" has no default for image_size %d "
                         "(guided-diffusion knows 64, 128, 256, 512); give "
                         "it explicitly" % image_size)
    return list(table[image_size])


def make_config(**overrides):
    """default_config() updated with overrides; fills out_channels from
    in_channels/learn_sigma unless given, and channel_mult from image_size
    (as guided-diffusion's channel_mult="") unless given."""
    cfg = default_config()
    unknown = set(overrides) - set(cfg) - {"null_class", "class_names"}
    if unknown:
        raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
    cfg.update(overrides)
    if "out_channels" not in overrides:
        cfg["out_channels"] = cfg["in_channels"] * (2 if cfg["learn_sigma"] else 1)
    if overrides.get("channel_mult") in ("", None):
        cfg["channel_mult"] = channel_mult_for_size(cfg["image_size"])
    check_config(cfg)
    return cfg


def check_config(cfg):
    """Raises ValueError with a clear message on inconsistent configs."""
    for k in MODEL_KEYS:
        if k not in cfg:
            raise ValueError("config lacks %s" % k)
    mc = cfg["model_channels"]
    if cfg["in_channels"] < 1 or mc < 1 or cfg["num_res_blocks"] < 1:
        raise ValueError("in_channels, model_channels and num_res_blocks "
                         "must be positive")
    want_out = cfg["in_channels"] * (2 if cfg["learn_sigma"] else 1)
    if cfg["out_channels"] != want_out:
        raise ValueError("out_channels %d does not match in_channels %d with "
                         "learn_sigma %s (expected %d)"
                         % (cfg["out_channels"], cfg["in_channels"],
                            cfg["learn_sigma"], want_out))
    if not cfg["channel_mult"]:
        raise ValueError("channel_mult is empty")
    for m in cfg["channel_mult"]:
        ch = int(m * mc)
        if ch < GROUPS or ch % GROUPS:
            raise ValueError("channel_mult %s x model_channels %d = %d "
                             "channels, not a multiple of the %d GroupNorm "
                             "groups" % (m, mc, ch, GROUPS))
    levels = len(cfg["channel_mult"])
    for r in cfg["attention_resolutions"]:
        if r <= 0 or cfg["image_size"] % r:
            raise ValueError("attention resolution %d does not divide "
                             "image_size %d" % (r, cfg["image_size"]))
    if cfg["image_size"] % (1 << (levels - 1)):
        raise ValueError("image_size %d not divisible by 2^%d (levels)"
                         % (cfg["image_size"], levels - 1))
    if cfg["num_head_channels"] == -1:
        if cfg["num_heads"] < 1:
            raise ValueError("num_heads must be >= 1 when num_head_channels "
                             "is -1")
    elif cfg["num_head_channels"] < 1:
        raise ValueError("num_head_channels must be -1 or positive")
    if cfg["num_classes"] < 0:
        raise ValueError("num_classes must be >= 0")
    nc = cfg.get("null_class", -1)
    if nc is not None and nc != -1 and not 0 <= nc < cfg["num_classes"]:
        raise ValueError("null_class %d outside 0..num_classes-1" % nc)


def _fmt_mult(m):
    return str(int(m)) if float(m).is_integer() else repr(float(m))


def _parse_bool(key, s):
    if s in ("True", "true", "1"):
        return True
    if s in ("False", "false", "0"):
        return False
    raise ValueError("metadata %s=%r is not True/False" % (key, s))


def config_to_metadata(cfg, extra=None):
    """Config dict -> __metadata__ (all values strings), DESIGN.md format.
    extra: optional free-text keys (description, license, source)."""
    check_config(cfg)
    md = {}
    for k in INT_KEYS:
        if k in cfg:
            md[k] = str(int(cfg[k]))
    for k in BOOL_KEYS:
        if k in cfg:
            md[k] = "True" if cfg[k] else "False"
    md["attention_resolutions"] = ",".join(str(int(r)) for r in
                                           cfg["attention_resolutions"])
    md["channel_mult"] = ",".join(_fmt_mult(m) for m in cfg["channel_mult"])
    if "noise_schedule" in cfg:
        md["noise_schedule"] = cfg["noise_schedule"]
    if cfg.get("dropout"):
        md["dropout"] = repr(float(cfg["dropout"]))
    nc = cfg.get("null_class", -1)
    if nc is not None and nc >= 0:
        md["null_class"] = str(int(nc))
    if cfg.get("class_names"):
        names = list(cfg["class_names"])
        if len(names) != cfg["num_classes"]:
            raise ValueError("%d class names for %d classes"
                             % (len(names), cfg["num_classes"]))
        md["class_names"] = json.dumps(names, ensure_ascii=False)
    for k, v in (extra or {}).items():
        md[k] = str(v)
    return md


def config_from_metadata(md):
    """__metadata__ dict of strings -> config dict (the inverse of
    config_to_metadata).  Missing diffusion keys take guided-diffusion's
    defaults; missing model keys are an error."""
    cfg = {}
    required = [k for k in MODEL_KEYS if k != "dropout"]
    for k in required:
        if k not in md:
            raise ValueError("model metadata lacks %s" % k)
    try:
        for k in INT_KEYS:
            if k in md:
                cfg[k] = int(md[k])
    except ValueError as e:
        raise ValueError("bad integer in metadata: %s" % e)
    for k in BOOL_KEYS:
        if k in md:
            cfg[k] = _parse_bool(k, md[k])
    ar = md["attention_resolutions"].strip()
    cfg["attention_resolutions"] = [int(r) for r in ar.split(",") if r.strip()]
    cfg["channel_mult"] = [float(m) if "." in m else int(m)
                           for m in md["channel_mult"].split(",") if m.strip()]
    cfg["dropout"] = float(md.get("dropout", "0"))
    cfg.setdefault("diffusion_steps", 1000)
    cfg["noise_schedule"] = md.get("noise_schedule", "linear")
    cfg.setdefault("rescale_timesteps", False)
    cfg["null_class"] = int(md["null_class"]) if "null_class" in md else -1
    if "class_names" in md:
        names = json.loads(md["class_names"])
        if not isinstance(names, list) or not all(isinstance(n, str)
                                                  for n in names):
            raise ValueError("class_names is not a JSON array of strings")
        cfg["class_names"] = names
    check_config(cfg)
    return cfg


# ---------------------------------------------------------------------------
# Layers


def timestep_embedding(t, dim, max_period=10000):
    """Sinusoidal embedding [cos(t f_k), sin(t f_k)], f_k = P^(-k/half).
    Computed in float32 like guided-diffusion (freqs and the product t*f in
    float32), so references in float64 still see the same embedding the
    original code gives."""
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class Norm(nn.GroupNorm):
    """GroupNorm(32, C), evaluated in at least float32."""

    def __init__(self, channels):
        super().__init__(GROUPS, channels, eps=GN_EPS)

    def forward(self, x):
        if x.dtype in (torch.float16, torch.bfloat16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


class Up(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 conv if conv is set
    (key: conv)."""

    def __init__(self, channels, conv):
        super().__init__()
        if conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.has_conv = conv

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.has_conv else x


class Down(nn.Module):
    """Stride-2 3x3 conv, or 2x2 average pooling (key: op)."""

    def __init__(self, channels, conv):
        super().__init__()
        if conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(2, 2)

    def forward(self, x):
        return self.op(x)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(x))); h += Linear(SiLU(emb)) (or FiLM:
    GN(h)*(1+scale)+shift); h = conv(dropout(SiLU(GN(h)))); out = skip(x)+h.
    up/down resample both paths between in_layers' SiLU and conv."""

    def __init__(self, ch, emb_ch, dropout, out_ch=None, scale_shift=False,
                 up=False, down=False):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(
            Norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.resample = None
        if up:
            self.resample = Up(ch, False)
        elif down:
            self.resample = Down(ch, False)
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(
            Norm(out_ch), nn.SiLU(), nn.Dropout(p=dropout),
            nn.Conv2d(out_ch, out_ch, 3, padding=1))
        if out_ch == ch:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(ch, out_ch, 1)

    def forward(self, x, emb):
        if self.resample is not None:
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.in_layers[2](self.resample(h))
            x = self.resample(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all positions: qkv = Conv1d(GN(x)) [B,3C,T];
    per head softmax(q^T k / sqrt(d)) v; out = x + proj_out(a).

    Head layout of the 3C qkv channels:
      legacy  ("split heads before qkv"): [head][q|k|v][d]
      new     ("split qkv before heads"): [q|k|v][head][d]"""

    def __init__(self, ch, num_heads, num_head_channels, new_order):
        super().__init__()
        if num_head_channels == -1:
            self.heads = num_heads
        else:
            if ch % num_head_channels:
                raise ValueError("%d channels not divisible by "
                                 "num_head_channels %d" % (ch, num_head_channels))
            self.heads = ch // num_head_channels
        if ch % self.heads:
            raise ValueError("%d channels not divisible by %d heads"
                             % (ch, self.heads))
        self.new_order = new_order
        self.norm = Norm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        n = hh * ww
        x = x.reshape(b, c, n)
        qkv = self.qkv(self.norm(x))
        d = c // self.heads
        if self.new_order:
            q, k, v = (t.reshape(b * self.heads, d, n)
                       for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * self.heads, 3 * d, n).split(d, dim=1)
        # Scale q and k by d^-1/4 each, as ADM does (same product in exact
        # arithmetic as dividing the logits by sqrt(d)).
        s = 1.0 / math.sqrt(math.sqrt(d))
        w = torch.einsum("bct,bcs->bts", q * s, k * s)
        w = torch.softmax(w.float() if w.dtype == torch.float16 else w,
                          dim=-1).to(w.dtype)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, n)
        return (x + self.proj_out(a)).reshape(b, c, hh, ww)


class Block(nn.Sequential):
    """Sequential that hands the embedding to ResBlocks."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


# ---------------------------------------------------------------------------
# The network


class ADMUNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(default_config())
        cfg.update(config)
        if "out_channels" not in config:
            cfg["out_channels"] = cfg["in_channels"] * (2 if cfg["learn_sigma"] else 1)
        check_config(cfg)
        self.config = cfg
        mc = cfg["model_channels"]
        mult = cfg["channel_mult"]
        nrb = cfg["num_res_blocks"]
        drop = cfg["dropout"]
        ss = cfg["use_scale_shift_norm"]
        updown = cfg["resblock_updown"]
        heads = cfg["num_heads"]
        heads_up = cfg["num_heads_upsample"]
        if heads_up == -1:
            heads_up = heads
        hc = cfg["num_head_channels"]
        new_order = cfg["use_new_attention_order"]
        # Pixel resolutions -> downsampling factors, as script_util does.
        attn_ds = {cfg["image_size"] // r for r in cfg["attention_resolutions"]}
        emb_ch = 4 * mc
        self.model_channels = mc
        self.num_classes = cfg["num_classes"]

        self.time_embed = nn.Sequential(
            nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if self.num_classes > 0:
            self.label_emb = nn.Embedding(self.num_classes, emb_ch)

        ch = ch0 = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList(
            [Block(nn.Conv2d(cfg["in_channels"], ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, m in enumerate(mult):
            for _ in range(nrb):
                layers = [ResBlock(ch, emb_ch, drop, int(m * mc), ss)]
                ch = int(m * mc)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, heads, hc, new_order))
                self.input_blocks.append(Block(*layers))
                skip_chans.append(ch)
            if level != len(mult) - 1:
                if updown:
                    layer = ResBlock(ch, emb_ch, drop, ch, ss, down=True)
                else:
                    layer = Down(ch, True)
                self.input_blocks.append(Block(layer))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = Block(
            ResBlock(ch, emb_ch, drop, ch, ss),
            AttentionBlock(ch, heads, hc, new_order),
            ResBlock(ch, emb_ch, drop, ch, ss))

        self.output_blocks = nn.ModuleList()
        for level in reversed(range(len(mult))):
            m = mult[level]
            for i in range(nrb + 1):
                layers = [ResBlock(ch + skip_chans.pop(), emb_ch, drop,
                                   int(m * mc), ss)]
                ch = int(m * mc)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, heads_up, hc, new_order))
                if level and i == nrb:
                    if updown:
                        layers.append(ResBlock(ch, emb_ch, drop, ch, ss, up=True))
                    else:
                        layers.append(Up(ch, True))
                    ds //= 2
                self.output_blocks.append(Block(*layers))

        self.out = nn.Sequential(
            Norm(ch), nn.SiLU(), nn.Conv2d(ch0, cfg["out_channels"], 3, padding=1))

    def forward(self, x, timesteps, y=None):
        """x [B,C,H,W] (H, W divisible by 2^(levels-1)); timesteps [B] as
        fed to the network (already rescaled if the model wants it);
        y [B] int64 labels, required iff num_classes > 0."""
        if (y is not None) != (self.num_classes > 0):
            raise ValueError("give y if and only if the model is "
                             "class-conditional (num_classes=%d)"
                             % self.num_classes)
        dt = self.out[2].weight.dtype
        emb = self.time_embed(
            timestep_embedding(timesteps, self.model_channels).to(dt))
        if y is not None:
            emb = emb + self.label_emb(y.long())
        h = x.to(dt)
        skips = []
        for blk in self.input_blocks:
            h = blk(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


def randomize_(model, gen=None, gain=1.0):
    """Re-initialise EVERY parameter randomly (including the zero-initialised
    output convs and the GroupNorm affine parameters) so that test outputs
    are non-trivial.  Weights ~ N(0, gain^2/fan_in) keep activations O(1);
    biases ~ N(0, 0.1^2); GroupNorm weight ~ 1 + N(0, 0.1^2), bias
    ~ N(0, 0.1^2); embeddings ~ N(0, 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            mod_name, _, kind = name.rpartition(".")
            mod = model.get_submodule(mod_name)
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if isinstance(mod, nn.GroupNorm):
                val = (1.0 if kind == "weight" else 0.0) + 0.1 * noise
            elif isinstance(mod, nn.Embedding):
                val = noise
            elif kind == "bias":
                val = 0.1 * noise
            else:
                fan_in = p[0].numel()
                val = noise * (gain / math.sqrt(fan_in))
            p.copy_(val.to(p.dtype))
    return model


# ---------------------------------------------------------------------------
# Seamless tiles (engine/conv.c, engine/winograd.c: diffuse_unet_set_tile)

def _tile_forward(self, x):
    """Conv2d.forward with circular padding in one direction only (x: the
    width, y: the height) and zeros in the other."""
    p = self.tile_pad
    if self.tile == "x":
        x = F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p))
    else:
        x = F.pad(F.pad(x, (0, 0, p, p), mode="circular"), (p, p, 0, 0))
    return F.conv2d(x, self.weight, self.bias, self.stride, 0)


def set_tile(model, tile):
    """Make every convolution of the model (kernel > 1: the 3x3 ones,
    stride 1 and 2) pad circularly in x ("x"), y ("y") or both ("both"),
    with zeros in the other direction; "none" restores zero padding.
    "both" is torch's own padding_mode='circular'; one direction pads
    with F.pad(mode='circular') on that axis, then zeros on the other."""
    assert tile in ("none", "x", "y", "both")
    for m in model.modules():
        if not isinstance(m, nn.Conv2d) or m.kernel_size[0] == 1:
            continue
        m.padding_mode = "circular" if tile == "both" else "zeros"
        m.tile = tile
        m.tile_pad = m.padding[0]
        if tile in ("x", "y"):
            m.forward = _tile_forward.__get__(m, nn.Conv2d)
        elif "forward" in m.__dict__:
            del m.forward
    return model
