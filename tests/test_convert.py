#!/usr/bin/python3
"""The whole conversion path, end to end:

    guided-diffusion-style checkpoint .pt  --tools/convert_checkpoint.py-->
    .safetensors  --diffuse info / forward / sample-->  equal to PyTorch

    test_convert.py PATH/TO/diffuse

For three configurations, given as README flags (an ADM class-conditional
one saved the way guided-diffusion's TrainLoop saves use_fp16 runs, a
legacy improved-diffusion-style one with every flag spelled out, and
improved-diffusion's CIFAR-10 model at full size with nothing but
`--defaults improved-diffusion` and its README's MODEL_FLAGS and
DIFFUSION_FLAGS), the test builds a random-weight diffref.adm_unet model,
torch.save()s its state dict, converts it (F32, and F16 for the first), and
checks with the diffuse CLI: `info` shows the configuration the flags mean
in the codebase that wrote them (written out by hand below from its
script_util.py, not derived from the converter), the class names and
torch's parameter count; `forward` equals the float64 torch forward (1e-4
relative); `sample` equals diffref.diffusion's sampler over the same
torch model and writes a PNG of the right size holding those samples.  A
legacy-format (non-zip) torch.save converts to the same bytes.  The
rescale_timesteps warning: given when the value comes from the defaults of
one codebase while the flags look like the other's, absent otherwise.
Then bad inputs: wrong flags, improved-diffusion's 32 px flags without
--defaults, a PNG, a truncated checkpoint and a pickle that would run code
must all fail with a message (never torch's advice to load with
weights_only=False) and leave no output.

Needs Debian's python3-torch and python3-numpy; without them the test
reports itself skipped (exit 77) and says why.  CI installs both and fails
when any test was skipped (.ci/run).
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.dont_write_bytecode = True
try:
    import numpy as np
    import torch
except ImportError as e:
    print("test_convert: SKIPPED: needs /usr/bin/python3 with torch and "
          "numpy (apt-get install python3-torch python3-numpy): %s" % e)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)  # the diffref package

from diffref import diffusion as rd  # noqa: E402
from diffref.adm_unet import ADMUNet, make_config, randomize_  # noqa: E402

CONVERT = os.path.join(TOOLS, "convert_checkpoint.py")
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog",
               "frog", "horse", "ship", "truck"]

# name: (README flags, the configuration they mean in guided-diffusion's
# create_model / create_gaussian_diffusion, written out by hand, how the
# checkpoint is saved, forward timesteps (network values), forward labels,
# sample options and the matching diffref.diffusion settings)
CASES = {
    "adm-cond": dict(
        flags=("--attention_resolutions 16,8 --class_cond True "
               "--diffusion_steps 1000 --image_size 32 --learn_sigma True "
               "--noise_schedule cosine --num_channels 64 "
               "--num_head_channels 32 --num_res_blocks 2 "
               "--resblock_updown True --use_new_attention_order True "
               "--use_fp16 True --use_scale_shift_norm True "
               "--in_channels 3 --num_classes 10 "
               # guided-diffusion's create_model has no channel_mult
               # default for 32 px (ValueError): a 32 px run names it
               "--channel_mult 1,2,2,2").split(),
        config=dict(
            image_size=32, in_channels=3, out_channels=6, model_channels=64,
            channel_mult=[1, 2, 2, 2],
            num_res_blocks=2, attention_resolutions=[16, 8], num_heads=4,
            num_head_channels=32, num_heads_upsample=-1,
            use_scale_shift_norm=True, resblock_updown=True,
            use_new_attention_order=True, learn_sigma=True, num_classes=10,
            diffusion_steps=1000, noise_schedule="cosine",
            rescale_timesteps=False),
        save="fp16-master", class_names=True, seed=201,
        t=[10.0, 980.0], y=[3, 7],
        sample=["--class", "cat", "--seed", "42", "--eta", "0"],
        ref=dict(sampler="ddim", eta=0.0, class_label=3, seed=42)),
    # improved-diffusion style (its CIFAR-10 layout, smaller).  The converter
    # takes guided-diffusion's defaults, so the flags where improved-
    # diffusion's differ (channel_mult 1,2,2,2 at 32 px, rescale_timesteps
    # True) are spelled out.
    "legacy": dict(
        flags=("--channel_mult 1,2,2,2 --image_size 32 --num_channels 32 "
               "--num_res_blocks 1 "
               "--num_heads 4 --attention_resolutions 16,8 "
               "--learn_sigma False --dropout 0.3 --diffusion_steps 4000 "
               "--noise_schedule linear --rescale_timesteps True "
               "--use_scale_shift_norm False --class_cond False").split(),
        config=dict(
            image_size=32, in_channels=3, out_channels=3, model_channels=32,
            channel_mult=[1, 2, 2, 2], num_res_blocks=1,
            attention_resolutions=[16, 8], num_heads=4, num_head_channels=-1,
            num_heads_upsample=-1, use_scale_shift_norm=False,
            resblock_updown=False, use_new_attention_order=False,
            learn_sigma=False, num_classes=0, diffusion_steps=4000,
            noise_schedule="linear", rescale_timesteps=True),
        save="plain", class_names=False, seed=202,
        t=[0.0, 512.25], y=None,   # rescaled network values (t x 1000/T)
        sample=["--sampler", "ddpm", "--seed", "7"],
        ref=dict(sampler="ddpm", class_label=-1, seed=7)),
    # improved-diffusion's README, "Unconditional CIFAR-10 with our L_hybrid
    # objective and cosine noise schedule" (cifar10_uncond_50M_500K.pt), its
    # MODEL_FLAGS and DIFFUSION_FLAGS verbatim.  What they mean there
    # (improved_diffusion/script_util.py): model_and_diffusion_defaults()
    # gives num_heads 4, num_heads_upsample -1, attention_resolutions
    # "16,8", use_scale_shift_norm True, rescale_timesteps True; create_model
    # has channel_mult (1, 2, 2, 2) at 32 px and none of num_head_channels,
    # resblock_updown or the new attention order.  Full size (52.5M
    # parameters); no sample, the legacy case samples with rescaling.
    "cifar10-improved": dict(
        flags=("--defaults improved-diffusion "
               "--image_size 32 --num_channels 128 --num_res_blocks 3 "
               "--learn_sigma True --dropout 0.3 "
               "--diffusion_steps 4000 --noise_schedule cosine").split(),
        config=dict(
            image_size=32, in_channels=3, out_channels=6, model_channels=128,
            channel_mult=[1, 2, 2, 2], num_res_blocks=3,
            attention_resolutions=[16, 8], num_heads=4, num_head_channels=-1,
            num_heads_upsample=-1, use_scale_shift_norm=True,
            resblock_updown=False, use_new_attention_order=False,
            learn_sigma=True, num_classes=0, diffusion_steps=4000,
            noise_schedule="cosine", rescale_timesteps=True),
        save="plain", class_names=False, seed=203,
        t=[0.25, 937.5], y=None,   # rescaled network values (t x 1000/T)
        sample=None, ref=None),
}
RESCALE_WARNING = "WARNING: rescale_timesteps was not given"


checks = 0
failures = 0


def ok(cond, what):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
    print("%s - %s" % ("ok" if cond else "FAIL", what), flush=True)
    return cond


def run(cmd):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env)


def show(p):
    for line in (p.stdout + p.stderr).rstrip().splitlines()[-15:]:
        print("    " + line)


def rel_err(a, b):
    """max |a - b| / max(1, max |b|), b the reference."""
    return float(np.abs(a.astype(np.float64) - b).max()
                 / max(1.0, float(np.abs(b).max())))


# ---------------------------------------------------------------------------
# Checkpoints as guided-diffusion / improved-diffusion write them


def state_dict_as_saved(model, how):
    """"plain": model.state_dict() (improved-diffusion, or guided-diffusion
    without use_fp16).  "fp16-master": guided-diffusion's
    MixedPrecisionTrainer.master_params_to_state_dict with use_fp16: the
    float32 master copies live in two flat buffers (params with ndim <= 1,
    and the rest) and the state dict holds views into them, so the saved
    tensors share storages at non-zero offsets."""
    sd = model.state_dict()
    if how == "plain":
        return sd
    named = list(model.named_parameters())
    for group in ([(n, p) for n, p in named if p.ndim <= 1],
                  [(n, p) for n, p in named if p.ndim > 1]):
        flat = torch.cat([p.detach().float().reshape(-1) for _, p in group])
        off = 0
        for n, p in group:
            sd[n] = flat[off:off + p.numel()].view(p.shape)
            off += p.numel()
    return sd


def make_checkpoint(tmp, name, case):
    cfg = make_config(**case["config"])
    model = ADMUNet(cfg).eval()
    randomize_(model, torch.Generator().manual_seed(case["seed"]))
    path = os.path.join(tmp, name + ".pt")
    with open(path, "wb") as f:   # train_util.save: th.save(state_dict, f)
        torch.save(state_dict_as_saved(model, case["save"]), f)
    return model, cfg, path


# ---------------------------------------------------------------------------
# Independent readers: safetensors header, PNG


def safetensors_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {v["dtype"] for v in header.values()}


def read_png(path):
    """8-bit non-interlaced PNG -> uint8 [H, W, C] (PNG spec, filters 0-4)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or interlace:
        raise ValueError("bit depth %d, interlace %d" % (depth, interlace))
    c = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * c
    out = np.zeros((h, stride), np.int32)
    for r in range(h):
        ft = raw[r * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, r * (stride + 1) + 1)
        prev = out[r - 1] if r else np.zeros(stride, np.int32)
        cur = out[r]
        for i in range(stride):
            a = cur[i - c] if i >= c else 0
            b = prev[i]
            d = prev[i - c] if i >= c else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:   # Paeth
                p = a + b - d
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - d)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else d)
            cur[i] = (int(line[i]) + pred) & 255
    return out.reshape(h, w, c).astype(np.uint8)


# ---------------------------------------------------------------------------
# The checks


def convert(ckpt, flags, out, extra=()):
    t0 = time.time()
    p = run([sys.executable, CONVERT, ckpt] + flags + list(extra)
            + ["-o", out])
    return p, time.time() - t0


def check_info(diffuse, name, model_path, cfg, n_params, names):
    p = run([diffuse, "info", model_path])
    if not ok(p.returncode == 0, "%s: diffuse info" % name):
        return show(p)
    info, classes = {}, {}
    for line in p.stdout.splitlines():
        if line.startswith("  ") and ": " in line:
            i, _, n = line.strip().partition(": ")
            classes[int(i)] = n
        elif ": " in line:
            k, _, v = line.partition(": ")
            info[k] = v
    want = {k: str(v) for k, v in cfg.items()
            if k not in ("channel_mult", "attention_resolutions")}
    want["channel_mult"] = ",".join(map(str, cfg["channel_mult"]))
    got = {k: info.get(k, "(missing)").split(" ")[0] for k in want}
    got["attention_resolutions"] = ",".join(sorted(
        info.get("attention_resolutions", "").split(","), key=int))
    want["attention_resolutions"] = ",".join(
        map(str, sorted(cfg["attention_resolutions"])))
    if cfg["num_head_channels"] != -1:
        # guided-diffusion then splits heads by channels and ignores
        # num_heads and num_heads_upsample (the engine shows them as -1)
        for k in ("num_heads", "num_heads_upsample"):
            del got[k], want[k]
    elif cfg["num_heads_upsample"] == -1 and got["num_heads_upsample"] == \
            str(cfg["num_heads"]):
        got["num_heads_upsample"] = "-1"   # -1 means num_heads
    diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    ok(not diff, "%s: info shows the flags' configuration%s"
       % (name, "" if not diff else " (got, want): %s" % diff))
    shown = int(info.get("parameters", "0").replace(",", ""))
    ok(shown == n_params, "%s: info counts %d parameters, torch %d"
       % (name, shown, n_params))
    if names:
        ok(classes == dict(enumerate(names)) and "null_class" in info
           and info["null_class"].startswith("none"),
           "%s: info lists the %d class names, no null class"
           % (name, len(names)))


def check_forward(diffuse, name, tmp, model_path, ref_model, case, cfg, tol):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    t = np.array(case["t"], np.float32)
    files = {k: os.path.join(tmp, "%s.%s.npy" % (name.replace(" ", "-"), k))
             for k in ("x", "t", "y", "out")}
    np.save(files["x"], x)
    np.save(files["t"], t)
    cmd = [diffuse, "forward", "--model", model_path, "--input", files["x"],
           "--timestep", files["t"], "--out", files["out"]]
    y = None
    if case["y"] is not None:
        np.save(files["y"], np.array(case["y"], np.float32))
        cmd += ["--class", files["y"]]
        y = torch.tensor(case["y"])
    p = run(cmd)
    if not ok(p.returncode == 0, "%s: diffuse forward" % name):
        show(p)
        return None
    got = np.load(files["out"])
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x).double(),
                        torch.from_numpy(t).double(), y).numpy()
    err = rel_err(got, ref)
    ok(got.shape == ref.shape and err <= tol,
       "%s: forward %s equals torch float64: relative %.2e (tolerance %g)"
       % (name, list(got.shape), err, tol))
    return got, ref


def check_sample(diffuse, name, tmp, model_path, ref_model, case, cfg):
    png = os.path.join(tmp, name.replace(" ", "-") + ".png")
    npy = os.path.join(tmp, name.replace(" ", "-") + ".sample.npy")
    p = run([diffuse, "sample", "--model", model_path, "--steps", "5",
             "--out", png, "--out-npy", npy, "--quiet"] + case["sample"])
    if not ok(p.returncode == 0, "%s: diffuse sample --steps 5" % name):
        return show(p)
    got = np.load(npy)
    r = case["ref"]
    sched = rd.Schedule(cfg["noise_schedule"], cfg["diffusion_steps"], "5")
    den = rd.model_denoiser(ref_model, cfg, 1, r["class_label"])
    ref, _ = rd.sample(sched, den, (1, 3, 32, 32), sampler=r["sampler"],
                       eta=r.get("eta", 0.0),
                       has_variance=cfg["learn_sigma"], seed=r["seed"])
    err = rel_err(got, ref)
    ok(err <= 1e-3, "%s: 5-step %s sample equals diffref.diffusion over "
       "torch: relative %.2e (tolerance 1e-3)" % (name, r["sampler"], err))
    img = read_png(png)
    ok(img.shape == (32, 32, 3), "%s: PNG is %s (H W C), want 32 32 3"
       % (name, " ".join(map(str, img.shape))))
    want = np.clip(got[0].transpose(1, 2, 0).astype(np.float64), -1, 1)
    dev = np.abs(img / 127.5 - 1 - want).max()
    ok(img.shape == want.shape and dev <= 0.5 / 127.5 + 1e-5,
       "%s: PNG pixels are the sample rounded to 8 bits (max %.4f level)"
       % (name, dev * 127.5))


def expect_warning(diffuse, tmp, what, ckpt, flags, needles, rescale):
    """Converts (must succeed), the stderr warning must name every needle,
    and the file must hold the defaults' rescale_timesteps."""
    out = os.path.join(tmp, "warned.safetensors")
    p, _ = convert(ckpt, flags, out)
    err = p.stderr
    missing = [n for n in needles if n not in err]
    ok(p.returncode == 0 and RESCALE_WARNING in err and not missing,
       "%s: converts with the rescale_timesteps warning%s:"
       % (what, "" if not missing else " (lacks %s)" % missing))
    show(p)
    i = run([diffuse, "info", out])
    ok(i.returncode == 0 and "\nrescale_timesteps: %s\n" % rescale in i.stdout,
       "%s: file has the defaults' rescale_timesteps %s" % (what, rescale))
    if os.path.exists(out):
        os.unlink(out)


def expect_failure(tmp, what, ckpt, flags, needle):
    out = os.path.join(tmp, "bad.safetensors")
    p, _ = convert(ckpt, flags, out)
    err = p.stderr.strip()
    good = (p.returncode == 1 and err.startswith("convert_checkpoint: ")
            and needle in err and "Traceback" not in err
            # torch's advice for a failed weights-only load: never passed on
            and "weights_only" not in err and "trusted source" not in err
            and not os.path.exists(out))
    ok(good, "%s: exit %d, no output file, message:" % (what, p.returncode))
    show(p)
    return p


class RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch '%s'" % self.marker,))


def main():
    if len(sys.argv) != 2:
        print("usage: test_convert.py PATH/TO/diffuse")
        return 2
    diffuse = os.path.abspath(sys.argv[1])
    torch.set_grad_enabled(False)
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="diffuse-convert-") as tmp:
        names_file = os.path.join(tmp, "classes.txt")
        with open(names_file, "w") as f:
            f.write("\n".join(CLASS_NAMES) + "\n")
        ckpts = {}
        for name, case in CASES.items():
            model, cfg, ckpt = make_checkpoint(tmp, name, case)
            ckpts[name] = (ckpt, case)
            n_params = sum(p.numel() for p in model.parameters())
            extra = ["--class-names", names_file] if case["class_names"] \
                else []
            dtypes = [("f32", "F32")] + ([("f16", "F16")]
                                         if name == "adm-cond" else [])
            ref64 = ADMUNet(cfg).double().eval()
            ref64.load_state_dict(model.state_dict())
            f32_out = None
            for dt, st_dtype in dtypes:
                tag = "%s %s" % (name, dt)
                out = os.path.join(tmp, "%s-%s.safetensors" % (name, dt))
                p, secs = convert(ckpt, case["flags"], out,
                                  extra + ["--dtype", dt])
                if not ok(p.returncode == 0 and os.path.exists(out),
                          "%s: convert_checkpoint.py (%.1f s): %s"
                          % (tag, secs, p.stdout.strip())):
                    show(p)
                    continue
                ok(RESCALE_WARNING not in p.stderr,
                   "%s: no rescale_timesteps warning" % tag)
                ok(safetensors_dtypes(out) == {st_dtype},
                   "%s: every tensor stored as %s" % (tag, st_dtype))
                check_info(diffuse, tag, out, case["config"], n_params,
                           CLASS_NAMES if case["class_names"] else None)
                if dt == "f32":
                    r = check_forward(diffuse, tag, tmp, out, ref64, case,
                                      cfg, 1e-4)
                    f32_out = r and r[1]
                    if case["sample"]:
                        check_sample(diffuse, tag, tmp, out, ref64, case,
                                     cfg)
                else:
                    # the same torch model with its weights rounded to F16
                    ref16 = ADMUNet(cfg).double().eval()
                    ref16.load_state_dict({k: v.half().double() for k, v
                                           in model.state_dict().items()})
                    r = check_forward(diffuse, tag, tmp, out, ref16, case,
                                      cfg, 1e-4)
                    if r is not None and f32_out is not None:
                        err = rel_err(r[0], f32_out)
                        ok(err <= 2e-2, "%s: F16 rounding moves the forward "
                           "by %.2e relative to the unrounded torch model "
                           "(bound 2e-2)" % (tag, err))

        adm, _ = ckpts["adm-cond"]
        legacy, legacy_case = ckpts["legacy"]
        cifar, cifar_case = ckpts["cifar10-improved"]

        # torch.save's legacy (pre-1.6, non-zip) format converts the same
        model = ADMUNet(make_config(**legacy_case["config"]))
        model.load_state_dict(torch.load(legacy, weights_only=True))
        old = os.path.join(tmp, "legacy-format.pt")
        torch.save(model.state_dict(), old,
                   _use_new_zipfile_serialization=False)
        with open(old, "rb") as f:
            magic = f.read(2)
        out = os.path.join(tmp, "legacy-format.safetensors")
        p, _ = convert(old, legacy_case["flags"], out,
                       ["--source", "legacy.pt"])
        same = False
        if p.returncode == 0:
            with open(out, "rb") as f, \
                    open(os.path.join(tmp, "legacy-f32.safetensors"),
                         "rb") as g:
                same = f.read() == g.read()
        if not ok(magic == b"\x80\x02" and same,
                  "legacy-format torch.save (starts %s) converts to the "
                  "same file as the zip one" % magic.hex()):
            show(p)

        # rescale_timesteps from the defaults while the flags look like the
        # other codebase's: converts (it may be right) but warns loudly
        flags = list(legacy_case["flags"])
        i = flags.index("--rescale_timesteps")
        del flags[i:i + 2]
        expect_warning(diffuse, tmp, "improved-diffusion-style flags "
                       "(4000 steps), guided-diffusion defaults", legacy,
                       flags, ["--diffusion_steps 4000",
                               "--defaults improved-diffusion",
                               "--rescale_timesteps False"], "False")
        expect_warning(diffuse, tmp, "guided-diffusion flags, --defaults "
                       "improved-diffusion", adm, CASES["adm-cond"]["flags"]
                       + ["--defaults", "improved-diffusion"],
                       ["--num_head_channels", "--use_new_attention_order",
                        "--defaults guided-diffusion"], "True")

        # bad input: every one exits 1 with a message and writes nothing
        readme = cifar_case["flags"][2:]
        ok(cifar_case["flags"][:2] == ["--defaults", "improved-diffusion"],
           "cifar10-improved flags less --defaults are the README's")
        p = expect_failure(tmp, "improved-diffusion 32 px README flags "
                           "without --defaults (guided-diffusion has no "
                           "32 px channel_mult)", cifar, readme,
                           "--defaults improved-diffusion")
        ok("channel_mult 1,2,2,2" in p.stderr
           and RESCALE_WARNING not in p.stderr,
           "... and the message reads channel_mult 1,2,2,2 off the "
           "checkpoint")
        wrong = [f if f != "64" else "32" for f in CASES["adm-cond"]["flags"]]
        expect_failure(tmp, "64-channel checkpoint, --num_channels 32", adm,
                       wrong, "--num_channels 64")
        wrong = [f for f in legacy_case["flags"]]
        i = wrong.index("--use_scale_shift_norm")
        del wrong[i:i + 2]   # forgetting the flag: the default is True
        expect_failure(tmp, "legacy checkpoint without "
                       "--use_scale_shift_norm False", legacy, wrong,
                       "--use_scale_shift_norm False")
        png = os.path.join(tmp, "adm-cond-f32.png")
        expect_failure(tmp, "a PNG as checkpoint", png,
                       CASES["adm-cond"]["flags"],
                       "%s is not a PyTorch checkpoint (it is a PNG image)"
                       % png)
        cut = os.path.join(tmp, "truncated.pt")
        with open(adm, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(os.path.getsize(adm) // 2))
        expect_failure(tmp, "a truncated checkpoint", cut,
                       CASES["adm-cond"]["flags"], "damaged or truncated")
        evil = os.path.join(tmp, "evil.pt")
        marker = os.path.join(tmp, "code-ran")
        torch.save({"input_blocks.0.0.weight": RunsCode(marker)}, evil)
        expect_failure(tmp, "a pickle that would run code", evil,
                       CASES["adm-cond"]["flags"],
                       "refused: its pickle refers to posix.system")
        ok(not os.path.exists(marker), "loading it ran no code")
    print("%d checks, %d failed, %.1f s" % (checks, failures,
                                             time.time() - t_start))
    return 1 if failures or not checks else 0


if __name__ == "__main__":
    sys.exit(main())
