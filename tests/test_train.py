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


def write_config(tmp, name, model_channels=32):
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
