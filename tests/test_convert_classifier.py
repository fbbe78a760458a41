#!/usr/bin/python3
"""Classifier checkpoints through the whole path:

    guided-diffusion-style classifier .pt --convert_checkpoint.py --classifier-->
    .safetensors --diffuse info / classify--> equal to PyTorch

    test_convert_classifier.py PATH/TO/diffuse

For two random-weight classifiers (tools/diffref/classifier.py, whose
state_dict is guided-diffusion's EncoderUNetModel's) given by README-style
flags (guided-diffusion's classifier defaults at 32 px with 1000 classes;
a grey adaptive-pool one with class names), torch.save()s the state dict,
converts it and checks: `diffuse info` shows the classifier, its pool and
the class count read from the checkpoint; `diffuse classify` logits and
gradient equal float64 torch autograd (1e-4 / 2e-4 relative).  Bad input:
a UNet checkpoint given with --classifier, the wrong pool, the wrong
--in_channels must fail with a message and leave no output.

Needs /usr/bin/python3 with torch and numpy; without them it reports itself
skipped (exit 77) and says why.
"""

import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
try:
    import numpy as np
    import torch
except ImportError as e:
    print("test_convert_classifier: SKIPPED: needs /usr/bin/python3 with torch "
          "and numpy (apt-get install python3-torch python3-numpy): %s" % e)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

from diffref.adm_unet import ADMUNet, make_config, randomize_  # noqa: E402
from diffref.classifier import (EncoderUNet, grad_log_prob,  # noqa: E402
                                make_classifier_config)

CONVERT = os.path.join(TOOLS, "convert_checkpoint.py")

CASES = {
    # guided-diffusion's classifier_defaults() (attention pool, scale-shift,
    # resblock_updown, 64 channels per head) at 32 px with a narrow width
    "gd-defaults-32": dict(
        flags="--image_size 32 --channel_mult 1,1,2 --classifier_width 64 "
              "--classifier_depth 1",
        config=dict(image_size=32, in_channels=3, model_channels=64,
                    out_channels=1000, num_res_blocks=1,
                    channel_mult=[1, 1, 2],
                    attention_resolutions=[32, 16, 8], num_head_channels=64,
                    use_scale_shift_norm=True, resblock_updown=True,
                    pool="attention"),
        size=(32, 32), t=[999.0, 250.0], y=[7, 993]),
    # guided-diffusion's default attention resolutions 32,16,8 at 16 px
    # with two levels: 8 px is never reached, and dropped
    "unreachable-attention": dict(
        flags="--image_size 16 --channel_mult 1,1 --classifier_width 64 "
              "--classifier_depth 1",
        config=dict(image_size=16, in_channels=3, model_channels=64,
                    out_channels=10, num_res_blocks=1, channel_mult=[1, 1],
                    attention_resolutions=[16, 8], num_head_channels=64,
                    use_scale_shift_norm=True, resblock_updown=True,
                    pool="attention"),
        size=(16, 16), t=[10.0], y=[9]),
    # grey, adaptive pool, no scale-shift, conv downsampling, class names
    "grey-adaptive": dict(
        flags="--image_size 16 --channel_mult 1,1 --classifier_width 64 "
              "--classifier_depth 2 --classifier_attention_resolutions 8 "
              "--classifier_use_scale_shift_norm False "
              "--classifier_resblock_updown False --classifier_pool adaptive "
              "--in_channels 1",
        config=dict(image_size=16, in_channels=1, model_channels=64,
                    out_channels=4, num_res_blocks=2, channel_mult=[1, 1],
                    attention_resolutions=[8], num_head_channels=64,
                    use_scale_shift_norm=False, resblock_updown=False,
                    pool="adaptive"),
        names=["north", "east", "south", "west"],
        size=(16, 32), t=[3.0], y=[2]),
}

failures = 0


def ok(cond, what):
    global failures
    print(("ok - " if cond else "FAIL - ") + what)
    if not cond:
        failures += 1


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-3))


def check_case(diffuse, tmp, name, case):
    cfg = make_classifier_config(**case["config"])
    torch.manual_seed(len(name))
    model = randomize_(EncoderUNet(cfg))
    ckpt = os.path.join(tmp, name + ".pt")
    torch.save(model.state_dict(), ckpt)
    out = os.path.join(tmp, name + ".safetensors")
    flags = case["flags"].split()
    if "names" in case:
        path = os.path.join(tmp, name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(case["names"]) + "\n")
        flags += ["--class-names", path]
    r = run([sys.executable, CONVERT, ckpt, "--classifier", "-o", out] + flags)
    ok(r.returncode == 0, "%s: converts (%s)" % (name, (r.stdout + r.stderr)
                                                 .strip()))
    if r.returncode:
        return
    r = run([diffuse, "info", out])
    ok(r.returncode == 0 and "type: classifier" in r.stdout
       and ("num_classes: %d" % cfg["out_channels"]) in r.stdout
       and ("pool: %s" % cfg["pool"]) in r.stdout,
       "%s: info shows a %s-pool classifier with %d classes"
       % (name, cfg["pool"], cfg["out_channels"]))
    if "names" in case:
        ok(all(n in r.stdout for n in case["names"]),
           "%s: info lists the class names" % name)
    h, w = case["size"]
    gen = torch.Generator().manual_seed(5)
    x = torch.rand((len(case["t"]), cfg["in_channels"], h, w),
                   generator=gen, dtype=torch.float64) * 2 - 1
    ref = EncoderUNet(cfg).double()
    ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    t = torch.tensor(case["t"], dtype=torch.float64)
    logits, grad = grad_log_prob(ref, x, t, case["y"])
    for k, v in (("x", x), ("t", t), ("y", torch.tensor(case["y"]))):
        np.save(os.path.join(tmp, "%s.%s.npy" % (name, k)),
                v.numpy().astype(np.float32))
    lo, go = (os.path.join(tmp, name + s) for s in (".l.npy", ".g.npy"))
    r = run([diffuse, "classify", "--model", out,
             "--input", os.path.join(tmp, name + ".x.npy"),
             "--timestep", os.path.join(tmp, name + ".t.npy"),
             "--class", os.path.join(tmp, name + ".y.npy"),
             "--out", lo, "--grad-out", go])
    ok(r.returncode == 0, "%s: classify runs %s" % (name, r.stderr.strip()))
    if r.returncode:
        return
    el = rel_err(np.load(lo), logits.numpy())
    eg = rel_err(np.load(go), grad.numpy())
    ok(el < 1e-4, "%s: logits equal torch (rel. %.2g)" % (name, el))
    ok(eg < 2e-4, "%s: gradient equals torch autograd (rel. %.2g)"
       % (name, eg))


def expect_failure(tmp, what, ckpt, flags, needle):
    out = os.path.join(tmp, "bad.safetensors")
    r = run([sys.executable, CONVERT, ckpt, "--classifier", "-o", out]
            + flags.split())
    ok(r.returncode == 1 and needle in r.stderr and not os.path.exists(out),
       "%s: fails with '%s' (%s)" % (what, needle, r.stderr.strip()[:200]))


def main():
    if len(sys.argv) != 2:
        print("usage: test_convert_classifier.py PATH/TO/diffuse")
        return 2
    diffuse = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            check_case(diffuse, tmp, name, case)
        good = os.path.join(tmp, "gd-defaults-32.pt")
        flags = CASES["gd-defaults-32"]["flags"]
        expect_failure(tmp, "wrong pool", good,
                       flags + " --classifier_pool adaptive",
                       "--classifier_pool attention")
        expect_failure(tmp, "wrong in_channels", good,
                       flags + " --in_channels 4", "--in_channels 3")
        expect_failure(tmp, "wrong width", good,
                       flags.replace("width 64", "width 96"),
                       "--classifier_width 64")
        unet = randomize_(ADMUNet(make_config(
            image_size=16, in_channels=3, model_channels=32,
            num_res_blocks=1, channel_mult=[1, 2], attention_resolutions=[8],
            num_classes=3)))
        upath = os.path.join(tmp, "unet.pt")
        torch.save(unet.state_dict(), upath)
        expect_failure(tmp, "a UNet checkpoint", upath,
                       "--image_size 16 --channel_mult 1,2", "diffusion UNet")
    print("%s" % ("PASS" if failures == 0 else "%d FAILED" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
