#!/usr/bin/python3
"""Train a class-conditional ADM UNet diffusion model on the CPU.

    nice -n 19 tools/train/train.py --config tools/train/configs/fashion.json

Rerunning the same command resumes EXACTLY from the last checkpoint
(model, EMA, optimizer, step, generator state and data order are saved),
so a killed run loses at most the steps since that checkpoint.
Checkpoints are not in git.  Without one, a run continues from a shipped
model instead:

    tools/train/train.py --config tools/train/configs/fashion.json \
        --init-from models/fashion.safetensors

takes the model and its EMA from that file's (EMA) weights, its step from
the file's training_step, and starts a fresh AdamW state with the
warm-up of the config counted from that step (models/training/README.md).

Method (tools/diffref/training.py has the formulas and citations):
  - epsilon prediction, learn_sigma with the hybrid loss
    L_simple + lambda L_vlb (lambda = 0.001, mean gradient stopped in L_vlb),
    t uniform over 0..T-1, cosine schedule;
  - classifier-free guidance training: each label is replaced by the null
    class (index n_real, num_classes = n_real + 1) with probability p_uncond;
  - AdamW, linear warm-up, optional cosine decay of the learning rate
    (lr_decay_steps, lr_final), gradient clipping, EMA of the weights with
    decay min(ema_decay, (1 + step) / (10 + step));
  - the EMA weights are exported to models/<name>.safetensors every
    export_minutes (tools/train/export.py).

Outputs in out_dir (models/training/<name>/): checkpoint.pt (atomic
rename of checkpoint.pt.tmp; --checkpoint puts it elsewhere; git ignores
it), loss.csv (one row per step), and the console log that the caller
redirects to train.log.
"""
import argparse
import copy
import csv
import json
import math
import os
import signal
import sys
import time

# On a shared 2-core machine under load, OpenMP's spinning waits cost 4-5x
# the CPU time of a step (measured: 5.4 CPU-s/step with 2 spinning threads
# vs 1.0-1.2 with 1 thread or passive waits), and 2 threads are barely
# faster than 1 even on an idle machine for a network this small.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))  # the diffref package

from diffref import adm_unet, safetensors_io  # noqa: E402
from diffref.training import Diffusion  # noqa: E402

CSV_FIELDS = ["step", "epoch", "loss", "mse", "vb", "grad_norm", "lr",
              "sec_per_step", "wall"]
VAL_FIELDS = ["step", "val_loss", "val_mse", "val_vb", "wall"]

TRAIN_DEFAULTS = {
    "seed": 0,
    "threads": 1,
    "batch_size": 32,
    "lr": 2e-4,
    "warmup_steps": 200,
    "lr_decay_steps": 0,
    "lr_final": 0.0,
    "weight_decay": 0.0,
    "adam_betas": [0.9, 0.999],
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "p_uncond": 0.1,
    "vlb_weight": 0.001,
    "balance_classes": False,
    "max_steps": 1000000,
    "checkpoint_minutes": 5.0,
    "export_minutes": 15.0,
    "export_dtype": "F32",
    "log_every": 50,
    "hflip": 0.0,
    "autocast": None,
    "val_every": 0,
    "val_size": 128,
}


def cpu_has_bf16():
    """True when the CPU has bf16 dot products (AVX512_BF16 or AMX-BF16).
    Without them PyTorch's CPU autocast emulates bf16: measured on an AMD
    EPYC with AVX2 only (2026-12-07), a fashion training step took 26.2 s
    under bf16 autocast against 1.27 s in float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve(path):
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for k, v in TRAIN_DEFAULTS.items():
        cfg.setdefault(k, v)
    for k in ("name", "data", "model", "out_dir", "export"):
        if k not in cfg:
            raise SystemExit("config %s lacks %r" % (path, k))
    return cfg


def load_data(cfg):
    d = np.load(resolve(cfg["data"]))
    x = torch.from_numpy(d["train_x"])          # uint8 [N, C, H, W]
    y = torch.from_numpy(d["train_y"]).long()
    names = [str(n) for n in d["class_names"]]
    return x, y, names


def load_val(cfg):
    """A fixed held-out batch for the validation loss: the first val_size
    images of the data's test split in a seeded order (classes as they
    come), with fixed t, noise and true labels; None without a test
    split."""
    d = np.load(resolve(cfg["data"]))
    if "test_x" not in d.files:
        return None
    n = min(cfg["val_size"], d["test_x"].shape[0])
    rng = np.random.default_rng([cfg["seed"], 4242])
    idx = np.sort(rng.permutation(d["test_x"].shape[0])[:n])
    x = torch.from_numpy(d["test_x"][idx]).float() / 127.5 - 1.0
    y = torch.from_numpy(d["test_y"][idx]).long()
    g = torch.Generator().manual_seed(cfg["seed"] + 4242)
    t = torch.randint(0, cfg.get("diffusion_steps", 1000), (n,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    return x, y, t, noise


def make_model_config(cfg, class_names):
    m = dict(cfg["model"])
    n_real = len(class_names)
    m["num_classes"] = n_real + 1
    m["null_class"] = n_real
    m["class_names"] = list(class_names) + [cfg.get("null_class_name", "none")]
    m["diffusion_steps"] = cfg.get("diffusion_steps", 1000)
    m["noise_schedule"] = cfg.get("noise_schedule", "cosine")
    m["rescale_timesteps"] = False
    return adm_unet.make_config(**m)


def zero_init_(model):
    """ADM zero-initialises the last conv of every ResBlock, every attention
    output projection and the final conv, so each block starts as the
    identity (guided-diffusion's zero_module)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, adm_unet.ResBlock):
                conv = mod.out_layers[-1]
            elif isinstance(mod, adm_unet.AttentionBlock):
                conv = mod.proj_out
            else:
                continue
            conv.weight.zero_()
            conv.bias.zero_()
        model.out[-1].weight.zero_()
        model.out[-1].bias.zero_()


def epoch_order(cfg, labels, epoch):
    """The sample order of one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([cfg["seed"], 7919, epoch])
    n = labels.shape[0]
    if not cfg["balance_classes"]:
        return rng.permutation(n)
    lab = labels.numpy()
    classes = np.unique(lab)
    per_class = int(math.ceil(n / len(classes)))
    parts = []
    for c in classes:
        idx = np.flatnonzero(lab == c)
        reps = int(math.ceil(per_class / len(idx)))
        seq = np.concatenate([rng.permutation(idx) for _ in range(reps)])
        parts.append(seq[:per_class])
    return rng.permutation(np.concatenate(parts))


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        torch.set_num_threads(cfg["threads"])
        self.x, self.y, self.class_names = load_data(cfg)
        self.model_cfg = make_model_config(cfg, self.class_names)
        self.null_class = self.model_cfg["null_class"]
        self.diff = Diffusion(self.model_cfg["diffusion_steps"],
                              self.model_cfg["noise_schedule"])
        torch.manual_seed(cfg["seed"])
        self.model = adm_unet.ADMUNet(self.model_cfg)
        zero_init_(self.model)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg["lr"],
                                     betas=tuple(cfg["adam_betas"]),
                                     weight_decay=cfg["weight_decay"])
        self.gen = torch.Generator().manual_seed(cfg["seed"] + 1)
        self.step = 0
        self.epoch = 0
        self.pos = 0
        self.warmup_from = 0    # the step the learning-rate warm-up starts at
        self.out_dir = resolve(cfg["out_dir"])
        os.makedirs(self.out_dir, exist_ok=True)
        self.ckpt_path = (resolve(cfg["checkpoint"]) if cfg.get("checkpoint")
                          else os.path.join(self.out_dir, "checkpoint.pt"))
        os.makedirs(os.path.dirname(self.ckpt_path), exist_ok=True)
        self.csv_path = os.path.join(self.out_dir, "loss.csv")
        self.order = None
        self.stop = False
        self.pause_file = None  # --pause-file: sleep while it exists
        self.val = load_val(cfg) if cfg["val_every"] else None
        self.val_path = os.path.join(self.out_dir, "val.csv")
        # "autocast": "bf16" applies where the CPU has bf16 (cpu_has_bf16);
        # elsewhere the step runs in float32.
        mode = cfg["autocast"]
        if mode not in (None, "", "none", "bf16"):
            raise SystemExit("config autocast %r: only \"bf16\" or null"
                             % mode)
        self.bf16_ok = mode == "bf16" and cpu_has_bf16()
        if mode == "bf16" and not self.bf16_ok:
            print("[%s] autocast bf16: this CPU has no AVX512_BF16/AMX-BF16, "
                  "training in float32" % stamp(), flush=True)

    # -- state ------------------------------------------------------------
    def state(self):
        return {
            "format": 1,
            "config": self.cfg,
            "model_config": self.model_cfg,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "pos": self.pos,
            "warmup_from": self.warmup_from,
            "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self):
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
        if st["model_config"] != self.model_cfg:
            raise SystemExit("checkpoint %s was made with another model "
                             "config; move it away to start afresh"
                             % self.ckpt_path)
        self.model.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.epoch, self.pos = st["step"], st["epoch"], st["pos"]
        self.warmup_from = st.get("warmup_from", 0)
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        return True

    def init_from_model(self, path):
        """Starts from a model file's weights (train.py's export holds the
        EMA): model and EMA both take them, AdamW starts afresh, the step
        is the file's training_step, the data order continues where an
        uninterrupted run would be at that step (the order is a function
        of seed and epoch), the generator for labels, t and noise is
        seeded with seed + 1 + step, and the warm-up restarts there."""
        try:
            tensors, md = safetensors_io.load_file(path)
            file_cfg = adm_unet.config_from_metadata(md)
            step = int(md.get("training_step", "0"))
        except (OSError, ValueError, safetensors_io.SafetensorsError) as e:
            raise SystemExit("--init-from %s: %s" % (path, e))
        diff = sorted(k for k in set(file_cfg) | set(self.model_cfg)
                      if file_cfg.get(k) != self.model_cfg.get(k))
        if diff:
            raise SystemExit("--init-from %s: the file's model differs from "
                             "the config's in %s" % (path, ", ".join(
                                 "%s (%r, config %r)" % (k, file_cfg.get(k),
                                                         self.model_cfg.get(k))
                                 for k in diff)))
        want = self.model.state_dict()
        if set(tensors) != set(want):
            raise SystemExit("--init-from %s: tensor names differ from the "
                             "model's" % path)
        state = {k: torch.from_numpy(tensors[k].astype(np.float32))
                 for k in want}
        self.model.load_state_dict(state)
        self.ema.load_state_dict(state)
        per_epoch = len(epoch_order(self.cfg, self.y, 0))
        done = step * self.cfg["batch_size"]
        self.step, self.warmup_from = step, step
        self.epoch, self.pos = divmod(done, per_epoch)
        self.gen = torch.Generator().manual_seed(self.cfg["seed"] + 1 + step)
        print("[%s] initialised from %s (EMA weights of step %d), fresh "
              "optimizer state" % (stamp(), path, step), flush=True)

    def open_csv(self, resumed):
        """Keeps the rows up to the checkpoint's step (later ones are redone
        after a resume) and opens the log for appending."""
        rows = []
        if resumed and os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f)
                        if int(r["step"]) <= self.step]
        tmp = self.csv_path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.csv_path)
        self.csv_file = open(self.csv_path, "a", newline="")
        self.csv = csv.DictWriter(self.csv_file, fieldnames=CSV_FIELDS)

    def wait_while_paused(self):
        """Sleeps while the pause file exists (others create it to take
        timings on a shared machine); a stop signal ends the wait.
        Returns the seconds spent waiting."""
        if not self.pause_file or not os.path.exists(self.pause_file):
            return 0.0
        t0 = time.time()
        print("[%s] paused at step %d while %s exists"
              % (stamp(), self.step, self.pause_file), flush=True)
        while os.path.exists(self.pause_file) and not self.stop:
            time.sleep(2.0)
        waited = time.time() - t0
        print("[%s] resumed after %.0f s" % (stamp(), waited), flush=True)
        return waited

    # -- one step -----------------------------------------------------------
    def next_batch(self):
        bs = self.cfg["batch_size"]
        idx = []
        while len(idx) < bs:
            if self.order is None:
                self.order = epoch_order(self.cfg, self.y, self.epoch)
            take = self.order[self.pos:self.pos + bs - len(idx)]
            idx.extend(take.tolist())
            self.pos += len(take)
            if self.pos >= len(self.order):
                self.epoch += 1
                self.pos = 0
                self.order = None
        idx = torch.tensor(idx)
        x = self.x[idx].float() / 127.5 - 1.0
        if self.cfg["hflip"]:
            # Horizontal flips keep the class of both data sets; the
            # draws come from the run's generator, so resumes are exact.
            flip = torch.rand(len(idx), generator=self.gen) < self.cfg["hflip"]
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, self.y[idx].clone()

    def lr_at(self, step):
        """Linear warm-up over warmup_steps from warmup_from (the run's
        start or --init-from step), then, when lr_decay_steps > 0, a
        cosine decay from lr to lr_final over lr_decay_steps, lr_final
        after that.  Both count from warmup_from, so a run continued from
        a shipped model (--init-from) goes through the whole schedule
        again; a checkpoint resume keeps its place in it."""
        lr, w = self.cfg["lr"], self.cfg["warmup_steps"]
        done = step - self.warmup_from
        if w and done < w:
            return lr * (done + 1) / w
        n = self.cfg["lr_decay_steps"]
        if n <= 0:
            return lr
        frac = min(1.0, (done - w) / n)
        lo = self.cfg["lr_final"]
        return lo + (lr - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def train_step(self):
        x0, y = self.next_batch()
        b = x0.shape[0]
        drop = torch.rand(b, generator=self.gen) < self.cfg["p_uncond"]
        y = torch.where(drop, torch.full_like(y, self.null_class), y)
        t = torch.randint(0, self.diff.T, (b,), generator=self.gen)
        noise = torch.randn(x0.shape, generator=self.gen)
        lr = self.lr_at(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        losses = self.diff.training_losses(
            self.net, x0, t, noise, y,
            learn_sigma=self.model_cfg["learn_sigma"],
            vlb_weight=self.cfg["vlb_weight"])
        loss = losses["loss"].mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                               self.cfg["grad_clip"])
        self.opt.step()
        self.step += 1
        decay = min(self.cfg["ema_decay"], (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        return {"loss": loss.item(), "mse": losses["mse"].mean().item(),
                "vb": losses["vb"].mean().item(), "grad_norm": float(gnorm),
                "lr": lr}

    def net(self, xt, t, y):
        """The network's forward pass for training: under bf16 autocast
        when the config says "autocast": "bf16" (the weights, AdamW and
        the EMA stay float32; GroupNorm runs in float32,
        diffref.adm_unet.Norm), the output cast back to float32 so the
        losses (the L_vlb KL above all) are computed in float32."""
        if not self.bf16_ok:  # no autocast asked for, or no bf16 here
            return self.model(xt, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.model(xt, t, y)
        return out.float()

    def validate(self):
        """The EMA weights' loss on the fixed held-out batch, in float32,
        appended to val.csv (a loss curve that neither the batch noise nor
        autocast moves)."""
        x, y, t, noise = self.val
        self.ema.eval()
        with torch.no_grad():
            tot = {"loss": 0.0, "mse": 0.0, "vb": 0.0}
            for i in range(0, x.shape[0], 32):
                sl = slice(i, i + 32)
                losses = self.diff.training_losses(
                    self.ema, x[sl], t[sl], noise[sl], y[sl],
                    learn_sigma=self.model_cfg["learn_sigma"],
                    vlb_weight=self.cfg["vlb_weight"])
                for k in tot:
                    tot[k] += losses[k].sum().item()
        row = {"step": self.step, "wall": "%.0f" % time.time()}
        for k in tot:
            row["val_" + k] = "%.6g" % (tot[k] / x.shape[0])
        new = not os.path.exists(self.val_path)
        with open(self.val_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=VAL_FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)
        print("[%s] step %d validation (EMA, %d held-out images): loss %s "
              "mse %s" % (stamp(), self.step, x.shape[0], row["val_loss"],
                          row["val_mse"]), flush=True)

    # -- export -----------------------------------------------------------
    def export(self):
        """Writes the EMA weights; a failure is logged, not fatal, so a
        long run never dies on an export problem (the checkpoint has all)."""
        path = resolve(self.cfg["export"])
        try:
            import export  # tools/train/export.py
            export.export_state(self.ema.state_dict(), self.model_cfg,
                                self.cfg, self.step, path)
        except Exception as e:  # noqa: BLE001 - reported and retried later
            print("[%s] export failed at step %d: %s: %s"
                  % (stamp(), self.step, type(e).__name__, e), flush=True)
            return
        print("[%s] exported EMA weights at step %d to %s"
              % (stamp(), self.step, path), flush=True)

    def run(self, max_steps=None, export=True, init_from=None):
        resumed = self.load_checkpoint()
        if resumed and init_from:
            print("[%s] %s exists: resuming from it, not from %s"
                  % (stamp(), self.ckpt_path, init_from), flush=True)
        elif init_from:
            self.init_from_model(init_from)
            resumed = True  # loss.csv keeps its rows up to this step
        n_params = sum(p.numel() for p in self.model.parameters())
        print("[%s] %s: %s at step %d (epoch %d), %d parameters, %d images"
              % (stamp(), self.cfg["name"], "resumed" if resumed else "new run",
                 self.step, self.epoch, n_params, self.x.shape[0]), flush=True)
        self.open_csv(resumed)
        max_steps = max_steps or self.cfg["max_steps"]
        last_ckpt = last_export = time.time()
        acc, t_log = [], time.time()
        if self.val is not None:
            self.validate()
        while self.step < max_steps and not self.stop:
            t_log += self.wait_while_paused()
            if self.stop:
                break
            t0 = time.time()
            row = self.train_step()
            dt = time.time() - t0
            row.update(step=self.step, epoch=self.epoch, sec_per_step=dt,
                       wall=time.time())
            self.csv.writerow({k: ("%.6g" % v if isinstance(v, float) else v)
                               for k, v in row.items()})
            acc.append(row["loss"])
            if not math.isfinite(row["loss"]):
                raise SystemExit("loss is %s at step %d; stopping without "
                                 "a checkpoint" % (row["loss"], self.step))
            if self.step % self.cfg["log_every"] == 0:
                now = time.time()
                print("[%s] step %d epoch %d loss %.4f (mean of last %d) "
                      "%.2f s/step" % (stamp(), self.step, self.epoch,
                                       sum(acc) / len(acc), len(acc),
                                       (now - t_log) / len(acc)), flush=True)
                acc, t_log = [], now
            now = time.time()
            if self.val is not None and self.step % self.cfg["val_every"] == 0:
                self.validate()
            if now - last_ckpt >= 60 * self.cfg["checkpoint_minutes"]:
                self.csv_file.flush()
                self.save_checkpoint()
                last_ckpt = now
            if export and now - last_export >= 60 * self.cfg["export_minutes"]:
                self.export()
                last_export = now
        self.csv_file.flush()
        self.save_checkpoint()
        if export:
            self.export()
        self.csv_file.close()


def stamp():
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def main():
    ap = argparse.ArgumentParser(description="train a diffusion model "
                                 "(resumes from the checkpoint in out_dir)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="stop at this step (default: the config's)")
    ap.add_argument("--out-dir", default=None, help="override out_dir")
    ap.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="the resume checkpoint (default: "
                    "OUT_DIR/checkpoint.pt; git ignores it there)")
    ap.add_argument("--init-from", default=None, metavar="MODEL",
                    help="without a checkpoint, start from this model "
                    "file's (EMA) weights and training_step with a fresh "
                    "optimizer, e.g. models/fashion.safetensors")
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--export", default=None, metavar="PATH",
                    help="write the EMA weights here instead of the "
                    "config's export path (e.g. to keep the shipped model "
                    "until a new one has been evaluated)")
    ap.add_argument("--pause-file", default=None, metavar="PATH",
                    help="before each step, sleep while PATH exists "
                    "(e.g. ~/diffuse-train.pause, created by whoever takes "
                    "timings on a shared machine); default: never pause")
    ap.add_argument("--benchmark", type=int, default=0, metavar="N",
                    help="time N training steps, write nothing, exit")
    args = ap.parse_args()
    cfg = load_config(args.config)
    if args.out_dir:
        cfg["out_dir"] = args.out_dir
    if args.checkpoint:
        cfg["checkpoint"] = os.path.abspath(args.checkpoint)
    if args.export:
        cfg["export"] = os.path.abspath(args.export)
    if args.benchmark:
        tr = Trainer.__new__(Trainer)
        Trainer.__init__(tr, cfg)
        n = sum(p.numel() for p in tr.model.parameters())
        tr.train_step()
        t0 = time.time()
        for _ in range(args.benchmark):
            tr.train_step()
        dt = (time.time() - t0) / args.benchmark
        print("%s: %d params, batch %d: %.3f s/step, %.1f img/s"
              % (cfg["name"], n, cfg["batch_size"], dt, cfg["batch_size"] / dt))
        return
    tr = Trainer(cfg)
    tr.pause_file = args.pause_file

    def on_signal(signum, frame):
        print("[%s] signal %d: checkpointing after this step"
              % (stamp(), signum), flush=True)
        tr.stop = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tr.run(args.max_steps, export=not args.no_export,
           init_from=args.init_from)


if __name__ == "__main__":
    main()
