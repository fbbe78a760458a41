#!/usr/bin/python3
"""Train a noisy-image classifier for classifier guidance on the CPU.

    nice -n 10 tools/train/train_classifier.py \
        --config tools/train/configs/fashion-classifier.json \
        [--checkpoint PATH] [--pause-file PATH] [--max-minutes M]

As guided-diffusion's classifier_train.py (Dhariwal & Nichol 2021, ADM-G,
sec. 4 and appendix): the classifier (diffref.classifier.EncoderUNet,
guided-diffusion's EncoderUNetModel) sees x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps (DDPM eq. 4, diffref.training.Diffusion.q_sample) at
a uniformly random t in 0..T-1 of the diffusion model it is trained for
(T and the beta schedule are read from that model file), and is trained
with cross-entropy on the image's class, AdamW, random horizontal flips
(and optional shifts), and an optional EMA of the weights.  Classes can be
sampled uniformly (balance_classes), which the emoji data needs.

Rerunning the same command resumes exactly from the checkpoint (weights,
EMA, optimizer, step, generator state); SIGTERM or SIGINT checkpoints and
stops, the end of the run (max_steps, --max-minutes, --stop-file) also
evaluates and exports.  The log and the export record the CPU seconds
spent in training steps (on a shared machine the wall time says little).  Checkpoints are not in git: the
default is out_dir/checkpoint.pt, which .gitignore excludes.  With
--pause-file, the trainer sleeps before each step while that file exists
(shared machines: timing runs elsewhere touch it).

At the end the weights (the EMA when ema_decay > 0) are written to the
config's export path in the classifier file format of
tools/convert_checkpoint.py --classifier (docs/DESIGN.md, "Classifier
file"), with the class names of the model (its null class dropped), and
the model's T and schedule in the metadata.
"""
import argparse
import copy
import json
import math
import os
import signal
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))  # the diffref package

from diffref import adm_unet, safetensors_io  # noqa: E402
from diffref.classifier import (EncoderUNet,  # noqa: E402
                                classifier_config_to_metadata,
                                make_classifier_config)
from diffref.training import Diffusion  # noqa: E402

DEFAULTS = {
    "seed": 0,
    "threads": 1,
    "batch_size": 32,
    "lr": 3e-4,
    "weight_decay": 0.05,
    "adam_betas": [0.9, 0.999],
    "warmup_steps": 100,
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "flip": True,
    "shift": 0,
    "balance_classes": False,
    "max_steps": 10000,
    "checkpoint_minutes": 5.0,
    "log_every": 100,
    "eval_images": 1000,
}


def resolve(path):
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def stamp():
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for k, v in DEFAULTS.items():
        cfg.setdefault(k, v)
    for k in ("name", "data", "diffusion_model", "classifier", "out_dir",
              "export"):
        if k not in cfg:
            raise SystemExit("config %s lacks %r" % (path, k))
    return cfg


def model_facts(path):
    """(T, schedule, image_size, in_channels, real class names) of the
    diffusion model the classifier will guide."""
    _, md = safetensors_io.load_file(path)
    mc = adm_unet.config_from_metadata(md)
    names = list(mc.get("class_names") or [])
    null = mc.get("null_class", -1)
    if null is not None and 0 <= null < len(names):
        names = names[:null] + names[null + 1:]
    return (mc["diffusion_steps"], mc["noise_schedule"], mc["image_size"],
            mc["in_channels"], names)


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        torch.set_num_threads(cfg["threads"])
        d = np.load(resolve(cfg["data"]))
        self.x, self.y = d["train_x"], d["train_y"].astype(np.int64)
        self.test_x, self.test_y = d["test_x"], d["test_y"].astype(np.int64)
        data_names = [str(n) for n in d["class_names"]]
        T, sched, size, chans, names = model_facts(
            resolve(cfg["diffusion_model"]))
        if names and names != data_names:
            raise SystemExit("the data's classes %s differ from the model's "
                             "%s" % (data_names, names))
        if self.x.shape[1:] != (chans, size, size):
            raise SystemExit("data images %s, model takes %s"
                             % (self.x.shape[1:], (chans, size, size)))
        self.diff = Diffusion(T, sched)
        self.clf_cfg = make_classifier_config(
            image_size=size, in_channels=chans,
            out_channels=len(data_names), class_names=data_names,
            diffusion_steps=T, noise_schedule=sched, **cfg["classifier"])
        torch.manual_seed(cfg["seed"])
        self.model = EncoderUNet(self.clf_cfg)
        self.ema = (copy.deepcopy(self.model).requires_grad_(False)
                    if cfg["ema_decay"] > 0 else None)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg["lr"],
                                     betas=tuple(cfg["adam_betas"]),
                                     weight_decay=cfg["weight_decay"])
        self.gen = torch.Generator().manual_seed(cfg["seed"] + 1)
        self.by_class = [np.flatnonzero(self.y == c)
                         for c in range(len(data_names))]
        self.step = 0
        self.train_seconds = 0.0
        self.cpu_seconds = 0.0
        self.stop = False
        self.ckpt_path = (resolve(cfg["checkpoint"]) if cfg.get("checkpoint")
                          else os.path.join(resolve(cfg["out_dir"]),
                                            "checkpoint.pt"))

    # -- state ------------------------------------------------------------
    def state(self):
        return {"format": 1, "config": self.cfg, "clf_config": self.clf_cfg,
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None,
                "opt": self.opt.state_dict(), "step": self.step,
                "train_seconds": self.train_seconds,
                "cpu_seconds": self.cpu_seconds,
                "gen": self.gen.get_state(),
                "torch_rng": torch.get_rng_state()}

    def save_checkpoint(self):
        os.makedirs(os.path.dirname(self.ckpt_path), exist_ok=True)
        tmp = self.ckpt_path + ".tmp"
        with open(tmp, "wb") as f:
            torch.save(self.state(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.ckpt_path)
        print("[%s] checkpoint at step %d" % (stamp(), self.step), flush=True)

    def load_checkpoint(self):
        if not os.path.exists(self.ckpt_path):
            return False
        st = torch.load(self.ckpt_path)
        if st["clf_config"] != self.clf_cfg:
            raise SystemExit("checkpoint %s was made for another classifier "
                             "config; move it away to start afresh"
                             % self.ckpt_path)
        self.model.load_state_dict(st["model"])
        if self.ema is not None:
            self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.step = st["step"]
        self.train_seconds = st.get("train_seconds", 0.0)
        self.cpu_seconds = st.get("cpu_seconds", 0.0)
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        return True

    # -- one step -----------------------------------------------------------
    def batch_indices(self, n):
        if self.cfg["balance_classes"]:
            k = len(self.by_class)
            cls = torch.randint(0, k, (n,), generator=self.gen).tolist()
            r = torch.rand(n, generator=self.gen, dtype=torch.float64).tolist()
            return np.array([self.by_class[c][int(u * len(self.by_class[c]))]
                             for c, u in zip(cls, r)])
        return torch.randint(0, len(self.y), (n,), generator=self.gen).numpy()

    def augment(self, x):
        b = x.shape[0]
        if self.cfg["flip"]:
            flip = torch.rand(b, generator=self.gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        s = self.cfg["shift"]
        if s:
            pad = F.pad(x, (s, s, s, s), value=-1.0)
            dx, dy = torch.randint(0, 2 * s + 1, (2,),
                                   generator=self.gen).tolist()
            x = pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]
        return x

    def lr_at(self, step):
        w = self.cfg["warmup_steps"]
        return self.cfg["lr"] * min(1.0, (step + 1) / w) if w else \
            self.cfg["lr"]

    def train_step(self):
        idx = self.batch_indices(self.cfg["batch_size"])
        x0 = torch.from_numpy(self.x[idx]).float() / 127.5 - 1.0
        y = torch.from_numpy(self.y[idx])
        x0 = self.augment(x0)
        t = torch.randint(0, self.diff.T, (len(idx),), generator=self.gen)
        noise = torch.randn(x0.shape, generator=self.gen)
        xt = self.diff.q_sample(x0, t, noise)
        lr = self.lr_at(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        logits = self.model(xt, t.to(torch.float32))
        loss = F.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                       self.cfg["grad_clip"])
        self.opt.step()
        self.step += 1
        if self.ema is not None:
            decay = min(self.cfg["ema_decay"],
                        (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                for pe, pm in zip(self.ema.parameters(),
                                  self.model.parameters()):
                    pe.mul_(decay).add_(pm, alpha=1 - decay)
        acc = (logits.argmax(1) == y).float().mean().item()
        return loss.item(), acc

    # -- held-out accuracy (torch; the card's numbers come from the C engine,
    # tools/eval/classifier_bands.py) ---------------------------------------
    def evaluate(self, net, n):
        g = torch.Generator().manual_seed(1234)
        n = min(n, len(self.test_y))
        idx = torch.randperm(len(self.test_y), generator=g)[:n].numpy()
        x0 = torch.from_numpy(self.test_x[idx]).float() / 127.5 - 1.0
        y = torch.from_numpy(self.test_y[idx])
        t = torch.randint(0, self.diff.T, (n,), generator=g)
        xt = self.diff.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xt[i:i + 250], t[i:i + 250].float())
                              .argmax(1) for i in range(0, n, 250)])
        ok = (pred == y).numpy()
        bands = {}
        for lo in range(0, self.diff.T, self.diff.T // 4):
            m = (t.numpy() >= lo) & (t.numpy() < lo + self.diff.T // 4)
            bands["%d-%d" % (lo, lo + self.diff.T // 4)] = \
                round(float(ok[m].mean()), 3) if m.any() else None
        return round(float(ok.mean()), 3), bands

    # -- export -------------------------------------------------------------
    def export(self):
        net = self.ema if self.ema is not None else self.model
        extra = {k: self.cfg[k] for k in ("description", "license", "source")
                 if self.cfg.get(k)}
        extra["training_step"] = str(self.step)
        extra["training_cpu_seconds"] = "%.0f" % self.cpu_seconds
        extra["trained_for"] = os.path.basename(self.cfg["diffusion_model"])
        md = classifier_config_to_metadata(self.clf_cfg, extra)
        tensors = {k: v.detach().float().numpy()
                   for k, v in net.state_dict().items()}
        path = resolve(self.cfg["export"])
        tmp = path + ".tmp"
        safetensors_io.save_file(tmp, tensors, md, dtype="F32")
        os.replace(tmp, path)
        print("[%s] exported %s weights at step %d to %s (%d bytes)"
              % (stamp(), "EMA" if self.ema is not None else "model",
                 self.step, path, os.path.getsize(path)), flush=True)

    def run(self, max_steps=None, max_minutes=None, pause_file=None,
            stop_file=None, export=True):
        resumed = self.load_checkpoint()
        n_params = sum(p.numel() for p in self.model.parameters())
        print("[%s] %s: %s at step %d, %d parameters, %d training images, "
              "T %d %s" % (stamp(), self.cfg["name"],
                           "resumed" if resumed else "new run", self.step,
                           n_params, len(self.y), self.diff.T,
                           self.clf_cfg["noise_schedule"]), flush=True)
        max_steps = max_steps or self.cfg["max_steps"]
        start = time.time()
        last_ckpt = time.time()
        losses, accs, t_log = [], [], 0.0
        while self.step < max_steps and not self.stop:
            if max_minutes and time.time() - start > 60 * max_minutes:
                break
            if stop_file and os.path.exists(stop_file):
                break
            while pause_file and os.path.exists(pause_file) and \
                    not self.stop:
                time.sleep(5)
            t0, c0 = time.time(), time.process_time()
            loss, acc = self.train_step()
            dt = time.time() - t0
            self.train_seconds += dt
            self.cpu_seconds += time.process_time() - c0
            t_log += dt
            if not math.isfinite(loss):
                raise SystemExit("loss is %s at step %d; stopping without a "
                                 "checkpoint" % (loss, self.step))
            losses.append(loss)
            accs.append(acc)
            if self.step % self.cfg["log_every"] == 0:
                print("[%s] step %d loss %.4f acc %.3f (last %d) %.3f s/step"
                      % (stamp(), self.step, sum(losses) / len(losses),
                         sum(accs) / len(accs), len(losses),
                         t_log / len(losses)), flush=True)
                losses, accs, t_log = [], [], 0.0
            if time.time() - last_ckpt >= 60 * self.cfg["checkpoint_minutes"]:
                self.save_checkpoint()
                last_ckpt = time.time()
        self.save_checkpoint()
        if self.stop:   # interrupted: resume later
            return
        net = self.ema if self.ema is not None else self.model
        acc, bands = self.evaluate(net, self.cfg["eval_images"])
        print("[%s] step %d, %.0f s of training steps (%.0f CPU s): held-out "
              "accuracy %.3f, by t band %s"
              % (stamp(), self.step, self.train_seconds, self.cpu_seconds,
                 acc, json.dumps(bands)), flush=True)
        if export:
            self.export()


def main():
    ap = argparse.ArgumentParser(description="train a noisy-image "
                                 "classifier (resumes from its checkpoint)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="the resume checkpoint (default: "
                    "OUT_DIR/checkpoint.pt, which git ignores)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (checkpoint and export) after this much "
                    "wall time in this invocation")
    ap.add_argument("--pause-file", default=None, metavar="PATH",
                    help="sleep before each step while this file exists")
    ap.add_argument("--stop-file", default=None, metavar="PATH",
                    help="finish (checkpoint, evaluate, export) before the "
                    "next step once this file exists")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--benchmark", type=int, default=0, metavar="N",
                    help="time N training steps, write nothing, exit")
    args = ap.parse_args()
    cfg = load_config(args.config)
    if args.checkpoint:
        cfg["checkpoint"] = os.path.abspath(args.checkpoint)
    tr = Trainer(cfg)
    if args.benchmark:
        n = sum(p.numel() for p in tr.model.parameters())
        tr.train_step()
        t0 = time.time()
        for _ in range(args.benchmark):
            tr.train_step()
        dt = (time.time() - t0) / args.benchmark
        print("%s: %d params, batch %d: %.3f s/step"
              % (cfg["name"], n, cfg["batch_size"], dt))
        return

    def on_signal(signum, frame):
        print("[%s] signal %d: checkpointing after this step"
              % (stamp(), signum), flush=True)
        tr.stop = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tr.run(args.max_steps, args.max_minutes, args.pause_file,
           args.stop_file, export=not args.no_export)


if __name__ == "__main__":
    main()
