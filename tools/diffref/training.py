"""Gaussian diffusion for training: the forward process and the hybrid
loss, in torch, on the schedules of diffref.diffusion.

Formulas (seed notes in shared/seeds; Ho et al. 2020 = DDPM,
Nichol & Dhariwal 2021 = improved DDPM):
  - β schedules: diffref.diffusion.betas_for (cosine: iDDPM eq. 17)
  - forward process: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps  (DDPM eq. 4)
  - posterior q(x_{t-1}|x_t,x_0): mean c0 x_0 + ct x_t,
    variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)  (DDPM eq. 6-7)
  - learned variance: Sigma = exp(v log beta_t + (1 - v) log beta~_t),
    v = (out + 1) / 2                                        (iDDPM eq. 15)
  - L_simple = |eps - eps_theta|^2 (mean over dimensions)    (DDPM eq. 14)
  - L_vlb term t: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0, the
    discretised Gaussian decoder NLL for t = 0, in bits per dimension,
    with the mean's gradient stopped so that L_vlb only trains Sigma
  - L_hybrid = L_simple + lambda L_vlb, lambda = 0.001        (iDDPM eq. 16);
    with t uniform, L_vlb = sum_t L_t is estimated as T * L_t.

Indices: t = 0..T-1 here is the DDPM step t+1 (guided-diffusion's
convention); the network sees t itself (rescale_timesteps False).
"""
import math

import numpy as np
import torch

from .diffusion import (betas_for, posterior_mean_coefs,
                        posterior_variance)


class Diffusion:
    def __init__(self, T, schedule="cosine"):
        betas = betas_for(schedule, T)
        self.T = T
        self.betas = betas
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1.0, abar[:-1])
        self.abar = abar
        self.sqrt_abar = np.sqrt(abar)
        self.sqrt_1m_abar = np.sqrt(1.0 - abar)
        self.sqrt_recip_abar = np.sqrt(1.0 / abar)
        self.sqrt_recipm1_abar = np.sqrt(1.0 / abar - 1.0)
        self.post_var = posterior_variance(betas, abar, abar_prev)
        # beta~_0 = 0: use beta~_1 for the log, as guided-diffusion does.
        self.post_logvar = np.log(np.append(self.post_var[1], self.post_var[1:]))
        self.post_c0, self.post_ct = posterior_mean_coefs(betas, abar,
                                                          abar_prev)
        self.log_betas = np.log(betas)

    @staticmethod
    def _take(arr, t, ndim):
        v = torch.from_numpy(arr).to(torch.float32)[t]
        return v.reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0, t, noise):
        n = x0.dim()
        return (self._take(self.sqrt_abar, t, n) * x0
                + self._take(self.sqrt_1m_abar, t, n) * noise)

    def q_posterior(self, x0, xt, t):
        n = x0.dim()
        mean = (self._take(self.post_c0, t, n) * x0
                + self._take(self.post_ct, t, n) * xt)
        return mean, self._take(self.post_logvar, t, n)

    def learned_logvar(self, v_out, t):
        """iDDPM eq. 15 on the raw network output v_out in [-1, 1]."""
        n = v_out.dim()
        frac = (v_out + 1) / 2
        return (frac * self._take(self.log_betas, t, n)
                + (1 - frac) * self._take(self.post_logvar, t, n))

    def training_losses(self, model, x0, t, noise, y=None, learn_sigma=True,
                        vlb_weight=0.001):
        """Per-example losses (dict of [B] tensors): mse, vb, loss."""
        xt = self.q_sample(x0, t, noise)
        out = model(xt, t.to(torch.float32), y)
        c = x0.shape[1]
        eps = out[:, :c]
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
        if not learn_sigma:
            return {"mse": mse, "vb": torch.zeros_like(mse), "loss": mse}
        n = x0.dim()
        logvar = self.learned_logvar(out[:, c:], t)
        eps_sg = eps.detach()   # stop-gradient: L_vlb trains only Sigma
        x0_pred = (self._take(self.sqrt_recip_abar, t, n) * xt
                   - self._take(self.sqrt_recipm1_abar, t, n) * eps_sg)
        model_mean, _ = self.q_posterior(x0_pred, xt, t)
        true_mean, true_logvar = self.q_posterior(x0, xt, t)
        kl = normal_kl(true_mean, true_logvar, model_mean, logvar)
        kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_loglik(x0, model_mean, 0.5 * logvar)
        nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        loss = mse + vlb_weight * self.T * vb
        return {"mse": mse, "vb": vb, "loss": loss}


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(m1, e^lv1) || N(m2, e^lv2)) per element, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _std_normal_cdf(x):
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_loglik(x, means, log_scales):
    """log P(bin of x) under N(means, e^(2 log_scales)) for 8-bit data in
    [-1, 1] (bin width 2/255; the end bins extend to +-infinity),
    DDPM sec. 3.3."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = _std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min,
                    torch.log(cdf_delta.clamp(min=1e-12))))
