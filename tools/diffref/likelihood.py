"""float64 reference of the variational bound in bits per dimension (what
engine/likelihood.c and `diffuse nll` compute), with the semantics of
improved-diffusion's calc_bpd_loop.  Written from the seed notes (ELBO /
NLL: L_VLB = L_T + sum L_{t-1} + L_0) and the papers (Ho et al. 2020
sec. 3.3 and eq. 13; Nichol & Dhariwal 2021 sec. 2-3), not from the C.

With 0-based t = 0 .. T-1 (guided-diffusion's counting):
  term(t >= 1) = KL( q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t) )
  term(t = 0)  = -log p(x0 | x_1): the discretized Gaussian decoder, bins
                 of width 2/255 around x0, outer bins open at +-1
  prior        = KL( q(x_{T-1} | x0) || N(0, I) )
each a mean over the C*H*W dimensions of an image, in bits.  x_t is one
draw sqrt(abar_t) x0 + sqrt(1 - abar_t) eps per t.

Estimate with n_timesteps = N (2..T): t = round(j (T-1)/(N-1)) for
j = 0..N-1; the t = 0 term counts once, the others (T-1)/(N-1) times.

Seeded noise: stream 2^40 + t of diffref.rng, image k at offset
k*C*H*W (noise_for_t), as the engine draws it.
"""

import math

import numpy as np

from . import diffusion as rd
from . import rng as ref_rng

NLL_STREAM_BASE = 1 << 40
BIN = 1.0 / 255.0       # half a bin: pixels are 2/255 apart in [-1, 1]
EDGE = 0.999            # below -EDGE / above EDGE the bin is open
PROB_FLOOR = 1e-12      # as improved-diffusion clamps probabilities

_erfc = np.frompyfunc(math.erfc, 1, 1)


def erfc(z):
    return np.asarray(_erfc(np.asarray(z, np.float64)), np.float64)


def std_normal_cdf(z):
    """Phi(z) = erfc(-z / sqrt 2) / 2 (exact, not a tanh fit)."""
    return 0.5 * erfc(-np.asarray(z) / math.sqrt(2.0))


def bin_probability(lo, hi):
    """Phi(hi) - Phi(lo) for lo < hi, elementwise.  A bin in the upper half
    is mirrored into the lower one (Phi(hi) - Phi(lo) = Phi(-lo) -
    Phi(-hi)), where both CDF values are small and their difference keeps
    its digits."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64),
                                 np.asarray(hi, np.float64))
    upper = lo + hi > 0
    a = np.where(upper, -hi, lo)
    b = np.where(upper, -lo, hi)
    return std_normal_cdf(b) - std_normal_cdf(a)


def decoder_nll_nats(x0, mean, log_var):
    """-log P(x0's 8-bit bin) under N(mean, exp(log_var)), elementwise."""
    sd = np.exp(0.5 * log_var)
    lo = (x0 - BIN - mean) / sd
    hi = (x0 + BIN - mean) / sd
    p = np.where(x0 < -EDGE, std_normal_cdf(hi),
                 np.where(x0 > EDGE, std_normal_cdf(-lo),
                          bin_probability(lo, hi)))
    return -np.log(np.maximum(p, PROB_FLOOR))


def gaussian_kl_nats(mean_q, log_var_q, mean_p, log_var_p):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) per dimension (the seed's
    two-Gaussian KL: 1/2 [log var_p/var_q + var_q/var_p - 1 +
    (mean_q - mean_p)^2 / var_p])."""
    return 0.5 * (log_var_p - log_var_q + np.exp(log_var_q - log_var_p) - 1.0
                  + (mean_q - mean_p) ** 2 * np.exp(-log_var_p))


class Chain:
    """The un-respaced forward chain of a model: beta_t, abar_t, and the
    posterior q(x_{t-1} | x_t, x0) coefficients (DDPM eq. 7)."""

    def __init__(self, kind, T):
        s = rd.Schedule(kind, T, "")
        self.T = T
        self.betas = np.asarray(s.betas, np.float64)
        self.abar = np.asarray(s.alphas_cumprod, np.float64)
        self.abar_prev = np.concatenate([[1.0], self.abar[:-1]])
        self.post_var = rd.posterior_variance(self.betas, self.abar,
                                              self.abar_prev)
        # beta~_0 = 0: its log is replaced by log beta~_1 ("clipped")
        self.post_log_var = np.log(np.concatenate([[self.post_var[1]],
                                                   self.post_var[1:]]))
        self.coef_x0, self.coef_xt = rd.posterior_mean_coefs(
            self.betas, self.abar, self.abar_prev)

    def model_log_var(self, t, variance, var_raw):
        """log Sigma of p(x_{t-1} | x_t) for the variance kind."""
        if variance == "learned":
            v = (var_raw + 1.0) / 2.0
            return v * math.log(self.betas[t]) + (1 - v) * self.post_log_var[t]
        if variance == "fixed-small":
            return self.post_log_var[t]
        if variance == "fixed-large":
            # beta_t, except beta~_1 at t = 0 (improved-diffusion)
            return self.post_log_var[1] if t == 0 else math.log(self.betas[t])
        raise ValueError("unknown variance %r" % variance)


def timesteps_for(T, n_timesteps):
    """(t list descending, weight list) of the terms evaluated."""
    if not n_timesteps or n_timesteps == T:
        return list(range(T - 1, -1, -1)), [1.0] * T
    N = n_timesteps
    if not 2 <= N <= T:
        raise ValueError("n_timesteps must be 0 or 2..T")
    ts = [round(j * (T - 1) / (N - 1)) for j in range(N - 1, -1, -1)]
    return ts, [1.0 if t == 0 else (T - 1) / (N - 1) for t in ts]


def noise_for_t(seed, t, shape):
    """The engine's seeded epsilon of x_t for a [B, C, H, W] batch."""
    return ref_rng.normal_like(seed, NLL_STREAM_BASE + t, shape) \
        .astype(np.float64)


def bound(chain, eps_fn, x0, noise_fn, n_timesteps=0, variances=("learned",),
          clip_denoised=True):
    """The bound of x0 [B, C, H, W] (float64, on the 8-bit grid).

    eps_fn(x_t, t) -> (eps, var_raw or None), float64 [B, C, H, W];
    noise_fn(t) -> the epsilon that draws x_t.  Returns a dict of numpy
    arrays in bits/dim: timesteps [N], weights [N], terms
    [n_var, N, B], prior [B], total [n_var, B], xstart_mse / eps_mse
    [N, B]."""
    x0 = np.asarray(x0, np.float64)
    B = x0.shape[0]
    dims = x0[0].size
    to_bits = 1.0 / (dims * math.log(2.0))
    ts, weights = timesteps_for(chain.T, n_timesteps)
    terms = np.zeros((len(variances), len(ts), B))
    xstart_mse = np.zeros((len(ts), B))
    eps_mse = np.zeros((len(ts), B))
    for j, t in enumerate(ts):
        eps = np.asarray(noise_fn(t), np.float64)
        ab = chain.abar[t]
        # q(x_t | x0) = N(sqrt(abar) x0, (1 - abar) I)
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        eps_hat, var_raw = eps_fn(x_t, t)
        x0_hat = (x_t - math.sqrt(1 - ab) * eps_hat) / math.sqrt(ab)
        if clip_denoised:
            x0_hat = np.clip(x0_hat, -1, 1)
        eps_from_x0 = (x_t - math.sqrt(ab) * x0_hat) / math.sqrt(1 - ab)
        xstart_mse[j] = ((x0_hat - x0) ** 2).reshape(B, -1).mean(1)
        eps_mse[j] = ((eps_from_x0 - eps) ** 2).reshape(B, -1).mean(1)
        mean_p = chain.coef_x0[t] * x0_hat + chain.coef_xt[t] * x_t
        mean_q = chain.coef_x0[t] * x0 + chain.coef_xt[t] * x_t
        for v, kind in enumerate(variances):
            log_var = chain.model_log_var(t, kind, var_raw)
            log_var = np.broadcast_to(log_var, x0.shape)
            if t == 0:
                nats = decoder_nll_nats(x0, mean_p, log_var)
            else:
                nats = gaussian_kl_nats(mean_q, chain.post_log_var[t],
                                        mean_p, log_var)
            terms[v, j] = nats.reshape(B, -1).sum(1) * to_bits
    ab = chain.abar[-1]
    prior = gaussian_kl_nats(math.sqrt(ab) * x0, math.log(1 - ab), 0.0, 0.0)
    prior = prior.reshape(B, -1).sum(1) * to_bits
    total = prior[None, :] + np.einsum("vjb,j->vb", terms, np.asarray(weights))
    return {"timesteps": np.asarray(ts), "weights": np.asarray(weights),
            "terms": terms, "prior": prior, "total": total,
            "xstart_mse": xstart_mse, "eps_mse": eps_mse}


def model_eps_fn(model, cfg, labels):
    """eps_fn for an ADMUNet (any dtype): labels [B] class indices, -1 =
    the null class; None for unconditional models.  The network sees t
    (x 1000/T with rescale_timesteps); its channels are eps, then the raw
    variance when it learns sigma."""
    import torch
    C = cfg["in_channels"]
    dtype = next(model.parameters()).dtype
    y = None
    if cfg["num_classes"]:
        null = cfg.get("null_class", -1)
        null = -1 if null is None else null
        y = np.array([null if lab < 0 else lab for lab in labels], np.int64)
        if (y < 0).any():
            raise ValueError("the model has no null class: label every image")

    def fn(x_t, t):
        tv = float(t)
        if cfg.get("rescale_timesteps"):
            tv *= 1000.0 / cfg["diffusion_steps"]
        xt = torch.from_numpy(np.ascontiguousarray(x_t)).to(dtype)
        tt = torch.full((x_t.shape[0],), tv, dtype=torch.float64)
        yt = None if y is None else torch.from_numpy(y)
        with torch.no_grad():
            out = model(xt, tt, yt).double().numpy()
        return out[:, :C], (out[:, C:2 * C] if out.shape[1] >= 2 * C
                            else None)
    return fn


def resolve_variances(variances, learn_sigma):
    return ["learned" if v == "auto" and learn_sigma
            else "fixed-large" if v == "auto" else v for v in variances]
