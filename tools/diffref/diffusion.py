"""float64 reference of gimp-diffusion's schedules and samplers (what
engine/schedule.c, engine/sampler.c and engine/sample.c implement), for
golden data and cross-checks.  Written from the theory notes in
shared/seeds and the papers; formula references are given per function.

Conventions (docs/DESIGN.md):
  * respaced index i = n-1 .. 0; alphas_cumprod[i] = ᾱ at the ORIGINAL
    timestep timesteps[i]; β_i = 1 - ᾱ_i / ᾱ_{i-1} (ᾱ_{-1} = 1).
  * the network sees timesteps[i] (x 1000/T when rescale_timesteps).
  * noise: stream 0 = x_T, stream 1 = img2img forward noise, stream 2+i =
    the noise of the reverse step at index i (none at i = 0); image k of a
    batch reads offset k*C*H*W, i.e. a [count, C, H, W] draw from 0.
"""

import math

import numpy as np

from . import rng

STREAM_X_T = 0
STREAM_IMG2IMG = 1
STREAM_STEP0 = 2

# ---------------------------------------------------------------------------
# β schedules


def linear_betas(T):
    """DDPM (Ho et al. 2020, sec. 4): β linear from 1e-4 to 0.02 over 1000
    steps; for other T both ends scale by 1000/T so that ᾱ_T stays close
    (guided-diffusion's get_named_beta_schedule("linear"))."""
    scale = 1000.0 / T
    return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)


def cosine_alpha_bar(t, s=0.008):
    """Improved DDPM (Nichol & Dhariwal 2021) eq. 17:
    f(t) = cos(((t/T + s)/(1 + s)) π/2)^2, here with t already divided by T."""
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def cosine_betas(T, max_beta=0.999):
    """β_t = 1 - ᾱ(t)/ᾱ(t-1) from eq. 17, clipped at 0.999 (sec. 3.2) to
    avoid the singularity at t = T."""
    return np.array([min(1 - cosine_alpha_bar((i + 1) / T)
                         / cosine_alpha_bar(i / T), max_beta)
                     for i in range(T)], dtype=np.float64)


def betas_for(kind, T):
    if kind == "linear":
        return linear_betas(T)
    if kind == "cosine":
        return cosine_betas(T)
    raise ValueError("unknown noise schedule %r" % kind)


# ---------------------------------------------------------------------------
# Respacing


def space_timesteps(T, spec):
    """Kept original timesteps, ascending, with guided-diffusion's
    timestep_respacing semantics:
      ""        all T steps
      "ddimN"   the smallest integer stride k with len(range(0, T, k)) == N
      "a,b,c"   T split into len sections (the first T % len one step
                longer); section j keeps its first step and then steps
                at a fractional stride (size-1)/(count-1), rounded
                half-to-even (Python's round), count = 1 keeps the first."""
    if spec is None or spec == "":
        return list(range(T))
    if spec.startswith("ddim"):
        want = int(spec[4:])
        for k in range(1, T):
            if len(range(0, T, k)) == want:
                return list(range(0, T, k))
        raise ValueError("cannot take exactly %d steps of %d with an integer "
                         "stride" % (want, T))
    counts = [int(c) for c in spec.split(",")]
    size_per, extra = divmod(T, len(counts))
    start = 0
    kept = []
    for j, count in enumerate(counts):
        size = size_per + (1 if j < extra else 0)
        if size < count:
            raise ValueError("cannot divide a section of %d steps into %d"
                             % (size, count))
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            kept.append(start + round(cur))
            cur += stride
        start += size
    return sorted(set(kept))


class Schedule:
    """A β schedule on T steps, respaced.  Attributes (numpy float64 unless
    said): T, timesteps (int list), alphas_cumprod, betas, n."""

    def __init__(self, kind, T, respacing=""):
        base = betas_for(kind, T)
        abar_full = np.cumprod(1.0 - base)
        self.kind = kind
        self.T = T
        self.timesteps = space_timesteps(T, respacing)
        self.n = len(self.timesteps)
        self.alphas_cumprod = abar_full[self.timesteps]
        prev = np.concatenate([[1.0], self.alphas_cumprod[:-1]])
        # β_i = 1 - ᾱ_{t_i}/ᾱ_{t_{i-1}}: the respaced chain keeps the
        # original marginals q(x_t | x_0) at the kept steps.
        self.betas = 1.0 - self.alphas_cumprod / prev

    def index_for_strength(self, strength):
        """img2img (SDEdit): the kept step whose original t is nearest to
        strength*T; ties go to the smaller t; strength <= 0 gives 0."""
        if not strength > 0:
            return 0
        target = strength * self.T
        best, best_d = 0, abs(self.timesteps[0] - target)
        for i in range(1, self.n):
            d = abs(self.timesteps[i] - target)
            if d < best_d:
                best, best_d = i, d
        return best


# ---------------------------------------------------------------------------
# Sampler steps


def predict_x0(x, eps, abar, clip):
    """x0 = (x_t - sqrt(1-ᾱ) ε)/sqrt(ᾱ) (DDPM eq. 4 solved for x0), clipped
    to [-1, 1] when clip."""
    x0 = np.sqrt(1.0 / abar) * x - np.sqrt(1.0 / abar - 1.0) * eps
    return np.clip(x0, -1.0, 1.0) if clip else x0


def ddim_step(x, x0, abar, abar_prev, eta, noise):
    """DDIM (Song et al. 2021) eq. 12 with eq. 16's
    σ = η sqrt((1-ᾱ')/(1-ᾱ)) sqrt(1 - ᾱ/ᾱ'); ε re-derived from the
    (clipped) x0 as guided-diffusion does.  noise None at the last step."""
    eps = (np.sqrt(1.0 / abar) * x - x0) / np.sqrt(1.0 / abar - 1.0)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) \
        * math.sqrt(1 - abar / abar_prev)
    out = math.sqrt(abar_prev) * x0 \
        + math.sqrt(max(1 - abar_prev - sigma ** 2, 0.0)) * eps
    if noise is not None:
        out = out + sigma * noise
    return out


def posterior_mean_coefs(beta, abar, abar_prev):
    """q(x_{t-1} | x_t, x_0) mean μ̃ = c0 x0 + ct x_t (Ho et al. 2020 eq. 7):
    c0 = sqrt(ᾱ')β/(1-ᾱ), ct = sqrt(1-β)(1-ᾱ')/(1-ᾱ), ᾱ' = ᾱ_{t-1}.
    Scalars or numpy arrays."""
    c0 = beta * np.sqrt(abar_prev) / (1 - abar)
    ct = (1 - abar_prev) * np.sqrt(1 - beta) / (1 - abar)
    return c0, ct


def posterior_variance(beta, abar, abar_prev):
    """β̃ = (1-ᾱ')β/(1-ᾱ), the variance of q(x_{t-1} | x_t, x_0)
    (Ho et al. 2020 eq. 7)."""
    return (1 - abar_prev) * beta / (1 - abar)


def ddpm_step(x, x0, var_raw, beta, abar, abar_prev, variance, noise,
              grad=None, post_var1=None):
    """Ancestral step (Ho et al. 2020 eqs. 6-7): μ̃ = sqrt(ᾱ')β/(1-ᾱ) x0 +
    sqrt(1-β)(1-ᾱ')/(1-ᾱ) x_t, plus σ z.  Variance:
      fixed-small  σ² = β̃ = (1-ᾱ')β/(1-ᾱ)
      fixed-large  σ² = β (β̃_1 at index 0, as guided-diffusion; no noise is
                   added there, so it only matters for classifier guidance)
      learned      improved DDPM eq. 15: log σ² = v log β + (1-v) log β̃,
                   v = (raw + 1)/2; at index 0 log β̃ is clipped to log β̃_1.
    grad: classifier guidance's s·∇x log p(y|x_t) (guided-diffusion's
    condition_mean, Dhariwal & Nichol alg. 1): μ̃ += σ²·grad, with σ² as
    above at every index (post_var1 = β̃_1 of the respaced schedule)."""
    c0, ct = posterior_mean_coefs(beta, abar, abar_prev)
    mean = c0 * x0 + ct * x
    first = abar_prev >= 1.0
    post = posterior_variance(beta, abar, abar_prev)
    log_var = None
    if variance == "learned" and (noise is not None or grad is not None):
        frac = (var_raw + 1.0) / 2.0
        log_small = math.log(post_var1 if first else post)
        log_var = frac * math.log(beta) + (1 - frac) * log_small
    if grad is not None:
        if variance == "fixed-small":
            var = post
        elif variance == "fixed-large":
            var = post_var1 if first else beta
        elif variance == "learned":
            var = np.exp(log_var)
        else:
            raise ValueError("unknown variance %r" % variance)
        mean = mean + var * grad
    if noise is None:
        return mean
    if variance == "fixed-small":
        log_var = math.log(post)
    elif variance == "fixed-large":
        log_var = math.log(beta)
    elif variance != "learned":
        raise ValueError("unknown variance %r" % variance)
    return mean + np.exp(0.5 * log_var) * noise


def condition_score(x, x0, abar, grad):
    """Classifier guidance for DDIM (guided-diffusion's condition_score,
    Dhariwal & Nichol alg. 2): ε from the (clipped) x0, ε -= sqrt(1-ᾱ)·grad,
    and x0 again from that ε (not clipped)."""
    c1, c2 = math.sqrt(1.0 / abar), math.sqrt(1.0 / abar - 1.0)
    eps = (c1 * x - x0) / c2 - math.sqrt(1.0 - abar) * grad
    return c1 * x - c2 * eps


def sample(schedule, denoise, shape, sampler="ddim", eta=0.0,
           variance="auto", has_variance=False, seed=0, clip_denoised=True,
           init_image=None, strength=1.0, init_noise=None, trace=None,
           cond_fn=None):
    """The reverse process over any denoiser.  denoise(x, i, t_model) ->
    (eps, var_raw or None), float64 arrays of shape `shape`.  Returns the
    final x (float64) and info dict (start_index, start_timestep, n_steps).
    trace: optional list that receives (i, x0_pred) per step.
    cond_fn(x, i, t_model) -> s·∇x log p(y|x_t): classifier guidance
    (condition_mean for DDPM, condition_score for DDIM)."""
    if variance == "auto":
        variance = "learned" if has_variance else "fixed-large"
    if sampler == "ddpm" and variance == "learned" and not has_variance:
        raise ValueError("learned variance needs a learn_sigma model")
    stochastic = sampler == "ddpm" or eta > 0
    start = schedule.n - 1
    if init_image is not None:
        start = schedule.index_for_strength(strength)
        eps0 = (np.asarray(init_noise, np.float64) if init_noise is not None
                else rng.normal_like(seed, STREAM_IMG2IMG, shape)
                .astype(np.float64))
        a = schedule.alphas_cumprod[start]
        # q(x_t | x_0) = N(sqrt(ᾱ) x0, (1-ᾱ) I), DDPM eq. 4
        x = math.sqrt(a) * np.asarray(init_image, np.float64) \
            + math.sqrt(1 - a) * eps0
    elif init_noise is not None:
        x = np.asarray(init_noise, np.float64)
    else:
        x = rng.normal_like(seed, STREAM_X_T, shape).astype(np.float64)
    abar_all = schedule.alphas_cumprod
    betas = schedule.betas
    post_var1 = (posterior_variance(betas[1], abar_all[1], abar_all[0])
                 if schedule.n > 1 else betas[0])
    for i in range(start, -1, -1):
        abar = abar_all[i]
        abar_prev = abar_all[i - 1] if i > 0 else 1.0
        want_var = sampler == "ddpm" and variance == "learned"
        eps, var_raw = denoise(x, i, schedule.timesteps[i])
        if want_var and var_raw is None:
            raise ValueError("denoiser gave no variance")
        x0 = predict_x0(x, eps, abar, clip_denoised)
        grad = None
        if cond_fn is not None:
            grad = cond_fn(x, i, schedule.timesteps[i])
            if sampler == "ddim":
                x0 = condition_score(x, x0, abar, grad)
                grad = None
        noise = None
        if stochastic and i > 0:
            noise = rng.normal_like(seed, STREAM_STEP0 + i, shape) \
                .astype(np.float64)
        if sampler == "ddpm":
            x = ddpm_step(x, x0, var_raw, schedule.betas[i], abar, abar_prev,
                          variance, noise, grad, post_var1)
        elif sampler == "ddim":
            x = ddim_step(x, x0, abar, abar_prev, eta, noise)
        else:
            raise ValueError("unknown sampler %r" % sampler)
        if trace is not None:
            trace.append((i, x0))
    return x, {"start_index": start,
               "start_timestep": schedule.timesteps[start],
               "n_steps": start + 1}


# ---------------------------------------------------------------------------
# Model denoiser with classifier-free guidance


def _null_label(cfg):
    null = cfg.get("null_class", -1)
    return -1 if null is None else null


def model_denoiser(model, cfg, count, class_label=-1, guidance=0.0,
                   null_model=None, null_cfg=None):
    """Wraps an ADMUNet (any dtype; float64 recommended) as a denoiser.
    class_label -1 means the null class (or no label for unconditional
    models).  Classifier-free guidance (Ho & Salimans 2022; seed notes):
    ε̄ = (1+w) ε(x, y) - w ε(x, ∅) on the ε channels only; the learned
    variance channels come from the conditional pass.  Guidance is skipped
    when w = 0 or y is the null class (both passes would be equal).

    null_model / null_cfg: a separate network for ε(x, ∅) (guided-diffusion
    pairs class models without a null class with unconditional ones): it
    sees the same x_t and t (its own rescale_timesteps), no label, or its
    null class when it is class-conditional; only its first C output
    channels are used."""
    import torch
    C = cfg["in_channels"]
    num_classes = cfg["num_classes"]
    null = _null_label(cfg)
    if null_model is not None:
        if (null_cfg["in_channels"] != C
                or null_cfg["diffusion_steps"] != cfg["diffusion_steps"]
                or null_cfg["noise_schedule"] != cfg["noise_schedule"]):
            raise ValueError("the null model needs the same in_channels, "
                             "diffusion_steps and noise_schedule")
        if null_cfg["num_classes"] and _null_label(null_cfg) < 0:
            raise ValueError("a class-conditional null model needs a null "
                             "class")
    if num_classes:
        label = class_label if class_label >= 0 else null
        if label < 0:
            raise ValueError("class_label -1 needs a model with a null class")
        guided = guidance > 0 and (null_model is not None or label != null)
        if guidance > 0 and null < 0 and null_model is None:
            raise ValueError("guidance needs the model's null class")
    else:
        if class_label != -1 or (guidance != 0 and null_model is None):
            raise ValueError("unconditional model: no label or guidance")
        label, guided = None, guidance > 0

    def runner(net, net_cfg):
        dtype = next(net.parameters()).dtype

        def run(x, t_model, y):
            tv = float(t_model)
            if net_cfg.get("rescale_timesteps"):
                tv = tv * (1000.0 / net_cfg["diffusion_steps"])
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(dtype)
            tt = torch.full((x.shape[0],), tv, dtype=torch.float64)
            yt = None if y is None else torch.full((x.shape[0],), y,
                                                    dtype=torch.long)
            with torch.no_grad():
                return net(xt, tt, yt).double().numpy()
        return run

    run = runner(model, cfg)
    if null_model is not None:
        run_null = runner(null_model, null_cfg)
        null_y = _null_label(null_cfg) if null_cfg["num_classes"] else None
    else:
        run_null, null_y = run, null

    def denoise(x, i, t_model):
        out = run(x, t_model, label)
        eps, var = out[:, :C], (out[:, C:] if out.shape[1] == 2 * C else None)
        if guided:
            eps_u = run_null(x, t_model, null_y)[:, :C]
            eps = (1.0 + guidance) * eps - guidance * eps_u
        return eps, var

    return denoise
