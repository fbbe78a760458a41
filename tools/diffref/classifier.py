"""The noisy-image classifier of classifier guidance (Dhariwal & Nichol
2021, ADM-G): guided-diffusion's EncoderUNetModel, written from the
architecture description on top of the reference UNet's layers
(diffref.adm_unet), with the same state_dict keys and shapes, so published
classifier checkpoints load without renaming and the C engine
(engine/classifier.c) binds the same names.

    time_embed.{0,2}          Linear, Linear (SiLU between)
    input_blocks.*            as the UNet's down half (the encoder's
                              downsampling is a stride-2 conv "op", or a
                              down-ResBlock with resblock_updown)
    middle_block.{0,1,2}      ResBlock, AttentionBlock, ResBlock
    out.0                     GroupNorm, then SiLU and
      pool "adaptive":        mean over H, W; out.3 = conv1x1 C -> classes
      pool "attention":       out.2 = AttentionPool2d: the mean token
                              prepended, + positional_embedding [C, HW+1],
                              qkv_proj (conv1d C -> 3C), multi-head
                              attention (heads = C / num_head_channels,
                              q|k|v split before heads), c_proj (C ->
                              classes), token 0 read out

The classifier has no label embedding and no learn_sigma; its metadata
marks it with model_type "classifier" (config_to_metadata).

grad_log_prob() is the reference for the engine's gradient: torch autograd
of log softmax(logits)[y] with respect to x (guided-diffusion's cond_fn
before its classifier_scale factor).
"""

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from diffref.adm_unet import (GROUPS, AttentionBlock, Block, Down, Norm, ResBlock,
                              channel_mult_for_size, timestep_embedding)

POOLS = ("adaptive", "attention")

CLASSIFIER_INT_KEYS = ("image_size", "in_channels", "model_channels",
                       "out_channels", "num_res_blocks", "num_heads",
                       "num_head_channels")
CLASSIFIER_BOOL_KEYS = ("use_scale_shift_norm", "resblock_updown",
                        "use_new_attention_order")


def classifier_defaults():
    """guided-diffusion's classifier_defaults() and create_classifier's
    fixed choices (num_head_channels 64, num_heads 1, 1000 classes), in our
    naming (classifier_width -> model_channels, classifier_depth ->
    num_res_blocks, classes -> out_channels)."""
    return {
        "image_size": 64,
        "in_channels": 3,
        "model_channels": 128,
        "out_channels": 1000,
        "num_res_blocks": 2,
        "attention_resolutions": [32, 16, 8],
        "channel_mult": channel_mult_for_size(64),
        "num_heads": 1,
        "num_head_channels": 64,
        "use_scale_shift_norm": True,
        "resblock_updown": True,
        "use_new_attention_order": False,
        "pool": "attention",
    }


def make_classifier_config(**overrides):
    cfg = classifier_defaults()
    unknown = set(overrides) - set(cfg) - {"class_names", "diffusion_steps",
                                           "noise_schedule"}
    if unknown:
        raise ValueError("unknown classifier config keys: %s"
                         % ", ".join(sorted(unknown)))
    cfg.update(overrides)
    if overrides.get("channel_mult") in ("", None):
        cfg["channel_mult"] = channel_mult_for_size(cfg["image_size"])
    check_classifier_config(cfg)
    return cfg


def check_classifier_config(cfg):
    mc = cfg["model_channels"]
    if cfg["in_channels"] < 1 or mc < 1 or cfg["num_res_blocks"] < 1:
        raise ValueError("in_channels, model_channels and num_res_blocks "
                         "must be positive")
    if cfg["out_channels"] < 1:
        raise ValueError("a classifier needs at least one class")
    if cfg["pool"] not in POOLS:
        raise ValueError("pool %r is not one of %s" % (cfg["pool"],
                                                       ", ".join(POOLS)))
    if not cfg["channel_mult"]:
        raise ValueError("channel_mult is empty")
    for m in cfg["channel_mult"]:
        ch = int(m * mc)
        if ch < GROUPS or ch % GROUPS:
            raise ValueError("channel_mult %s x model_channels %d = %d "
                             "channels, not a multiple of the %d GroupNorm "
                             "groups" % (m, mc, ch, GROUPS))
    levels = len(cfg["channel_mult"])
    if cfg["image_size"] % (1 << (levels - 1)):
        raise ValueError("image_size %d not divisible by 2^%d (levels)"
                         % (cfg["image_size"], levels - 1))
    for r in cfg["attention_resolutions"]:
        if r <= 0 or cfg["image_size"] % r:
            raise ValueError("attention resolution %d does not divide "
                             "image_size %d" % (r, cfg["image_size"]))
    if cfg["pool"] == "attention" and cfg["num_head_channels"] < 1:
        raise ValueError("the attention pool needs num_head_channels")
    if cfg["num_head_channels"] == -1 and cfg["num_heads"] < 1:
        raise ValueError("num_heads must be >= 1 when num_head_channels "
                         "is -1")
    names = cfg.get("class_names")
    if names and len(names) != cfg["out_channels"]:
        raise ValueError("%d class names for %d classes"
                         % (len(names), cfg["out_channels"]))


def _fmt_mult(m):
    return str(int(m)) if float(m).is_integer() else repr(float(m))


def classifier_config_to_metadata(cfg, extra=None):
    """Config -> __metadata__ strings (docs/DESIGN.md, "Classifier file")."""
    check_classifier_config(cfg)
    md = {"model_type": "classifier"}
    for k in CLASSIFIER_INT_KEYS:
        md[k] = str(int(cfg[k]))
    for k in CLASSIFIER_BOOL_KEYS:
        md[k] = "True" if cfg[k] else "False"
    md["num_classes"] = str(int(cfg["out_channels"]))
    md["attention_resolutions"] = ",".join(str(int(r)) for r in
                                           cfg["attention_resolutions"])
    md["channel_mult"] = ",".join(_fmt_mult(m) for m in cfg["channel_mult"])
    md["pool"] = cfg["pool"]
    if cfg.get("diffusion_steps"):
        md["diffusion_steps"] = str(int(cfg["diffusion_steps"]))
    if cfg.get("noise_schedule"):
        md["noise_schedule"] = cfg["noise_schedule"]
    if cfg.get("class_names"):
        md["class_names"] = json.dumps(list(cfg["class_names"]),
                                       ensure_ascii=False)
    for k, v in (extra or {}).items():
        md[k] = str(v)
    return md


def classifier_config_from_metadata(md):
    if md.get("model_type") != "classifier":
        raise ValueError("not a classifier file (model_type %r)"
                         % md.get("model_type"))
    cfg = {}
    for k in CLASSIFIER_INT_KEYS:
        cfg[k] = int(md[k])
    for k in CLASSIFIER_BOOL_KEYS:
        cfg[k] = md[k] in ("True", "true", "1")
    cfg["attention_resolutions"] = [int(r) for r in
                                    md["attention_resolutions"].split(",")
                                    if r.strip()]
    cfg["channel_mult"] = [float(m) if "." in m else int(m)
                           for m in md["channel_mult"].split(",")]
    cfg["pool"] = md["pool"]
    if "diffusion_steps" in md:
        cfg["diffusion_steps"] = int(md["diffusion_steps"])
    if "noise_schedule" in md:
        cfg["noise_schedule"] = md["noise_schedule"]
    if "class_names" in md:
        cfg["class_names"] = json.loads(md["class_names"])
    check_classifier_config(cfg)
    return cfg


class AttentionPool2d(nn.Module):
    """CLIP's attention pooling as guided-diffusion uses it: the spatial
    mean is prepended as token 0, a learned positional embedding
    [C, HW + 1] added, and token 0's output of multi-head attention over
    all tokens (q, k, v split before heads; q and k each scaled by
    d^-1/4) projected to the classes."""

    def __init__(self, spatial, channels, head_channels, n_out):
        super().__init__()
        self.positional_embedding = nn.Parameter(
            torch.randn(channels, spatial * spatial + 1) / channels ** 0.5)
        self.qkv_proj = nn.Conv1d(channels, 3 * channels, 1)
        self.c_proj = nn.Conv1d(channels, n_out, 1)
        self.heads = channels // head_channels

    def forward(self, x):
        b, c = x.shape[:2]
        x = x.reshape(b, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)
        x = x + self.positional_embedding[None].to(x.dtype)
        qkv = self.qkv_proj(x)
        n = qkv.shape[-1]
        d = c // self.heads
        q, k, v = (t.reshape(b * self.heads, d, n) for t in qkv.chunk(3, 1))
        s = 1.0 / math.sqrt(math.sqrt(d))
        w = torch.softmax(torch.einsum("bct,bcs->bts", q * s, k * s), dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, n)
        return self.c_proj(a)[:, :, 0]


class EncoderUNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        cfg = dict(classifier_defaults())
        cfg.update(config)
        check_classifier_config(cfg)
        self.config = cfg
        mc = cfg["model_channels"]
        mult = cfg["channel_mult"]
        nrb = cfg["num_res_blocks"]
        ss = cfg["use_scale_shift_norm"]
        heads, hc = cfg["num_heads"], cfg["num_head_channels"]
        new_order = cfg["use_new_attention_order"]
        attn_ds = {cfg["image_size"] // r for r in cfg["attention_resolutions"]}
        emb_ch = 4 * mc
        self.model_channels = mc

        self.time_embed = nn.Sequential(
            nn.Linear(mc, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        ch = int(mult[0] * mc)
        self.input_blocks = nn.ModuleList(
            [Block(nn.Conv2d(cfg["in_channels"], ch, 3, padding=1))])
        ds = 1
        for level, m in enumerate(mult):
            for _ in range(nrb):
                layers = [ResBlock(ch, emb_ch, 0.0, int(m * mc), ss)]
                ch = int(m * mc)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, heads, hc, new_order))
                self.input_blocks.append(Block(*layers))
            if level != len(mult) - 1:
                if cfg["resblock_updown"]:
                    layer = ResBlock(ch, emb_ch, 0.0, ch, ss, down=True)
                else:
                    layer = Down(ch, True)
                self.input_blocks.append(Block(layer))
                ds *= 2
        self.middle_block = Block(
            ResBlock(ch, emb_ch, 0.0, ch, ss),
            AttentionBlock(ch, heads, hc, new_order),
            ResBlock(ch, emb_ch, 0.0, ch, ss))
        if cfg["pool"] == "adaptive":
            self.out = nn.Sequential(
                Norm(ch), nn.SiLU(), nn.AdaptiveAvgPool2d((1, 1)),
                nn.Conv2d(ch, cfg["out_channels"], 1), nn.Flatten())
        else:
            self.out = nn.Sequential(
                Norm(ch), nn.SiLU(),
                AttentionPool2d(cfg["image_size"] // ds, ch, hc,
                                cfg["out_channels"]))

    def forward(self, x, timesteps):
        """x [B,C,H,W]; timesteps [B] as the network sees them.  Returns
        the logits [B, classes]."""
        dt = self.time_embed[0].weight.dtype
        emb = self.time_embed(
            timestep_embedding(timesteps, self.model_channels).to(dt))
        h = x.to(dt)
        for blk in self.input_blocks:
            h = blk(h, emb)
        h = self.middle_block(h, emb)
        return self.out(h)


def grad_log_prob(model, x, timesteps, y):
    """(logits, d/dx Σ_b log softmax(logits_b)[y_b]): the gradient that
    guided-diffusion's cond_fn returns before multiplying by the
    classifier scale."""
    with torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        logits = model(x_in, timesteps)
        lp = F.log_softmax(logits, dim=-1)
        sel = lp[torch.arange(len(logits)), torch.as_tensor(y).long()]
        g = torch.autograd.grad(sel.sum(), x_in)[0]
    return logits.detach(), g.detach()
