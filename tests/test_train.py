#!/usr/bin/python3
"""tools/train/train.py resumes without a committed optimizer checkpoint.

A tiny class-conditional ADM UNet (8x8 grey, 32 channels) is trained for
3 steps on 8 random images; its exported EMA weights then start a second
run with --init-from and the checkpoint kept elsewhere (--checkpoint):
  - the new checkpoint holds the file's weights as model and EMA, the
    file's training_step, an empty AdamW state and the data position an
    uninterrupted run has at that step (epoch and position in the order);
  - 2 more steps train from there: loss.csv keeps the first run's 3 rows
    and adds steps 4 and 5, the warm-up restarts (lr/2 at step 4 with
    warmup_steps 2), the losses are finite;
  - an existing checkpoint wins over --init-from (said on the console);
  - hflip mirrors images (labels kept); with hflip, bf16 autocast and
    val_every a run resumed from its checkpoint ends with the weights of an
    uninterrupted one, and val.csv holds finite held-out losses;
  - with --pause-file naming an existing file the run waits before its
    next step and goes on once the file is removed;
  - lr_decay_steps: after the warm-up the learning rate falls to
    lr_final along a cosine and stays there;
  - a model file whose architecture differs from the config's is refused
    with the differing option named, and no checkpoint is written.
Prints TAP; exit 1 on any failure.  Needs /usr/bin/python3 with torch
(without it: exit 77, skipped, saying why).
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
try:
    import numpy as np
    import torch
except ImportError as e:
    print("test_train: SKIPPED: needs /usr/bin/python3 with torch and numpy "
          "(apt-get install python3-torch python3-numpy): %s" % e)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "tools", "train", "train.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))  # the diffref package

from diffref import safetensors_io  # noqa: E402

FAILED = []
N_TEST = [0]


def ok(cond, what):
    N_TEST[0] += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", N_TEST[0], what))
    if not cond:
        FAILED.append(what)


def train(*args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, TRAIN] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    return r.returncode, r.stdout


def write_config(tmp, name, model_channels=32, **extra):
    cfg = {
        "name": "tiny", "data": os.path.join(tmp, "data.npz"),
        "out_dir": os.path.join(tmp, "run"),
        "export": os.path.join(tmp, "tiny.safetensors"),
        "model": {"image_size": 8, "in_channels": 1,
                  "model_channels": model_channels, "num_res_blocks": 1,
                  "attention_resolutions": [4], "channel_mult": [1, 1],
                  "num_heads": 1, "num_head_channels": 32,
                  "use_scale_shift_norm": True, "learn_sigma": True},
        "diffusion_steps": 50, "noise_schedule": "cosine",
        "batch_size": 3, "lr": 1e-3, "warmup_steps": 2, "seed": 5,
        "threads": 1, "log_every": 1, "checkpoint_minutes": 1000.0,
        "export_minutes": 1000.0, "description": "test_train.py",
    }
    cfg.update(extra)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def main():
    tmp = tempfile.mkdtemp(prefix="diffuse-train-")
    rng = np.random.default_rng(3)
    np.savez(os.path.join(tmp, "data.npz"),
             train_x=rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8),
             train_y=np.arange(8) % 2,
             test_x=rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8),
             test_y=np.arange(4) % 2,
             class_names=np.array(["even", "odd"]))
    conf = write_config(tmp, "tiny.json")
    run = os.path.join(tmp, "run")
    export = os.path.join(tmp, "tiny.safetensors")

    rc, out = train("--config", conf, "--max-steps", "3")
    ok(rc == 0 and os.path.exists(export), "3 steps train and export "
       "(rc %d)%s" % (rc, "" if rc == 0 else ":\n" + out))
    first = torch.load(os.path.join(run, "checkpoint.pt"))
    os.remove(os.path.join(run, "checkpoint.pt"))
    tensors, md = safetensors_io.load_file(export)
    ok(md.get("training_step") == "3", "the export says training_step 3")

    elsewhere = os.path.join(tmp, "kept", "ckpt.pt")
    rc, out = train("--config", conf, "--max-steps", "3", "--no-export",
                    "--checkpoint", elsewhere, "--init-from", export)
    ok(rc == 0 and "initialised from" in out and os.path.exists(elsewhere)
       and not os.path.exists(os.path.join(run, "checkpoint.pt")),
       "--init-from writes its checkpoint where --checkpoint says")
    st = torch.load(elsewhere)
    same = all(torch.equal(st[w][k], torch.from_numpy(tensors[k]))
               for w in ("model", "ema") for k in tensors)
    ok(same and set(st["model"]) == set(tensors),
       "model and EMA are the file's weights")
    ok(st["step"] == 3 and st["warmup_from"] == 3,
       "step and warm-up start are the file's training_step")
    ok(st["opt"]["state"] == {}, "the optimizer state is fresh")
    ok((st["epoch"], st["pos"]) == (first["epoch"], first["pos"]),
       "the data position equals the uninterrupted run's (epoch %d pos %d)"
       % (st["epoch"], st["pos"]))

    rc, out = train("--config", conf, "--max-steps", "5", "--no-export",
                    "--checkpoint", elsewhere, "--init-from", export)
    ok(rc == 0 and "resuming from it" in out,
       "an existing checkpoint wins over --init-from")
    with open(os.path.join(run, "loss.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    ok([int(r["step"]) for r in rows] == [1, 2, 3, 4, 5],
       "loss.csv keeps steps 1-3 and adds 4-5")
    ok(abs(float(rows[3]["lr"]) - 5e-4) < 1e-12
       and abs(float(rows[4]["lr"]) - 1e-3) < 1e-12,
       "the warm-up restarts at the initial step (lr %s, %s)"
       % (rows[3]["lr"], rows[4]["lr"]))
    ok(all(np.isfinite(float(r["loss"])) for r in rows), "losses are finite")
    ok(torch.load(elsewhere)["step"] == 5, "the run continues to step 5")

    # --pause-file: no step runs while the file exists; the run goes on
    # once it is removed.
    pause = os.path.join(tmp, "PAUSE")
    open(pause, "w").close()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, TRAIN, "--config", conf,
                             "--max-steps", "6", "--no-export",
                             "--checkpoint", elsewhere, "--pause-file", pause],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "paused at step" in line:
            break
    time.sleep(3.0)
    with open(os.path.join(run, "loss.csv"), newline="") as f:
        n_rows = len(list(csv.DictReader(f)))
    ok(proc.poll() is None and "paused at step 5" in lines[-1] and n_rows == 5,
       "with the pause file present the run waits at step 5 (%d rows)"
       % n_rows)
    os.remove(pause)
    rest, _ = proc.communicate(timeout=120)
    ok(proc.returncode == 0 and "resumed after" in rest
       and torch.load(elsewhere)["step"] == 6,
       "removing the pause file lets it finish step 6 (rc %d)"
       % proc.returncode)

    # hflip, bf16 autocast and the validation loss (val.csv), and an exact
    # resume with them: 2 + 2 steps give the weights of 4 in one run.
    sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
    import train as train_mod
    flipped = []
    for p_flip in (0.0, 1.0):
        cfg = train_mod.load_config(write_config(tmp, "f.json", hflip=p_flip))
        flipped.append(train_mod.Trainer(cfg).next_batch())
    ok(torch.equal(flipped[1][0], flipped[0][0].flip(3))
       and torch.equal(flipped[1][1], flipped[0][1]),
       "hflip 1.0 mirrors every image of the batch and keeps its labels")
    extra = dict(hflip=0.5, autocast="bf16", val_every=2)
    one = write_config(tmp, "one.json", **extra)
    with open(one) as f:
        cfg = json.load(f)
    cfg["out_dir"] = os.path.join(tmp, "run-one")
    with open(one, "w") as f:
        json.dump(cfg, f)
    two = write_config(tmp, "two.json", **extra)
    with open(two) as f:
        cfg = json.load(f)
    cfg["out_dir"] = os.path.join(tmp, "run-two")
    with open(two, "w") as f:
        json.dump(cfg, f)
    rc1, out1 = train("--config", one, "--max-steps", "4", "--no-export")
    rc2, out2 = train("--config", two, "--max-steps", "2", "--no-export")
    rc3, out3 = train("--config", two, "--max-steps", "4", "--no-export")
    ok(rc1 == rc2 == rc3 == 0, "bf16 autocast, hflip and val_every train "
       "(rc %d %d %d)%s" % (rc1, rc2, rc3, "" if rc1 == rc2 == rc3 == 0
                            else ":\n" + out1 + out2 + out3))
    if rc1 == rc2 == rc3 == 0:
        a = torch.load(os.path.join(tmp, "run-one", "checkpoint.pt"))
        b = torch.load(os.path.join(tmp, "run-two", "checkpoint.pt"))
        ok(all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"]),
           "with them, 2 + 2 steps resumed equal 4 steps in one run")
        with open(os.path.join(tmp, "run-one", "val.csv"), newline="") as f:
            vrows = list(csv.DictReader(f))
        ok([int(r["step"]) for r in vrows] == [0, 2, 4]
           and all(np.isfinite(float(r["val_loss"])) for r in vrows),
           "val.csv has the EMA's finite held-out loss at steps 0, 2, 4")

    # The cosine decay after the warm-up: lr 1e-3 down to lr_final 1e-4
    # over 2 steps, then flat; counted from the --init-from step.
    cfg = train_mod.load_config(write_config(
        tmp, "decay.json", lr_decay_steps=2, lr_final=1e-4))
    tr = train_mod.Trainer(cfg)
    tr.warmup_from = 10
    got = [tr.lr_at(s) for s in range(10, 16)]
    want = [5e-4, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4]
    ok(all(abs(g - w) < 1e-12 for g, w in zip(got, want)),
       "warm-up then cosine decay to lr_final (%s)"
       % ", ".join("%.3g" % g for g in got))

    wide = write_config(tmp, "wide.json", model_channels=64)
    bad = os.path.join(tmp, "bad.pt")
    rc, out = train("--config", wide, "--max-steps", "4", "--no-export",
                    "--checkpoint", bad, "--init-from", export)
    ok(rc != 0 and "model_channels" in out and not os.path.exists(bad),
       "another architecture is refused, naming model_channels:\n    "
       + out.strip().splitlines()[-1])

    print("1..%d" % N_TEST[0])
    if not FAILED:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
