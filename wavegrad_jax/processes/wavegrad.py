"""The paper's process (Chen et al. 2020, arXiv 2009.00713): noise prediction on a continuous
noise level l = sqrt(alpha_bar), y = l y0 + sqrt(1 - l^2) eps, loss ||eps - eps_theta(y, x, l)||_1,
and the reverse-diffusion sampler of `sampling` over any schedule of betas.

The maths stays in `diffusion` (forward noising, the loss), `schedules` (betas, levels),
`priors` (PriorGrad's mel-shaped source) and `sampling` (the one jitted reverse scan); this module
is the seam that names them as one process. With `process.spectral` weights, the spectral losses
of `spectral` are added on the one-step clean estimate y0_hat = (y - sqrt(1 - l^2) eps_hat) / l,
weighted per example by l^2 because y0_hat's error is that of eps_hat times sqrt(1 - l^2) / l
(unbounded at the noisiest levels).
"""
import dataclasses
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax.diffusion import priors
from wavegrad_jax import sampling
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.processes import base
from wavegrad_jax.processes import spectral


@dataclasses.dataclass(frozen=True)
class WaveGradProcess(base.Process):
  """The paper's noise-level process.

  Attributes:
    levels: [S + 1] training noise levels l_0 = 1 > l_1 > ... (`schedules.noise_levels` of
      config.diffusion.train_schedule), as a tuple so the process hashes.
    loss: 'l1' (the paper) or 'l2'.
    prior: `priors.Prior` (PriorGrad) or None for N(0, I).
    spectral_losses: `spectral.SpectralLosses` on y0_hat, or None.
  """
  levels: Tuple[float, ...]
  loss: str = 'l1'
  prior: Optional[priors.Prior] = None
  spectral_losses: Optional[spectral.SpectralLosses] = None

  name = 'wavegrad'

  @classmethod
  def from_config(cls, config):
    betas = schedules.parse_schedule(config.diffusion.train_schedule,
                                     config.sampling.get('named_schedules', None))
    loss = config.diffusion.loss
    if loss not in diffusion.LOSSES:
      raise ValueError(f'diffusion.loss must be one of {sorted(diffusion.LOSSES)}, got {loss!r}')
    levels = tuple(float(v) for v in np.asarray(schedules.noise_levels(betas), np.float32))
    return cls(levels=levels, loss=loss,
               prior=priors.make_prior(priors.PriorOptions.from_config(config)),
               spectral_losses=spectral.SpectralLosses.from_config(config))

  def training_loss(self, net_fn, params, rng, clean, mel):
    levels = jnp.asarray(self.levels, jnp.float32)
    noise_std = None
    if self.prior is not None:
      noise_std = self.prior.noise_std(mel, clean.shape[-1] // mel.shape[-2])
    if self.spectral_losses is None:
      loss, _ = diffusion.denoising_loss(net_fn, params, rng, clean, mel, levels, self.loss,
                                         noise_std)
      return loss, {'main': loss}
    # The same draws as denoising_loss, kept here to form the clean estimate as well.
    level_rng, noise_rng = jax.random.split(rng)
    level = diffusion.sample_noise_level(level_rng, levels, clean.shape[0])
    noise = jax.random.normal(noise_rng, clean.shape, jnp.float32)
    std = 1.0 if noise_std is None else noise_std
    noise = noise * std
    noisy = diffusion.add_noise(clean, noise, level)
    predicted = net_fn(params, noisy, mel, level)
    main = diffusion.LOSSES[self.loss](predicted / std, noise / std)
    l = level[:, None]
    estimate = (noisy - jnp.sqrt((1.0 - l) * (1.0 + l)) * predicted) / jnp.maximum(l, 1e-4)
    parts = self.spectral_losses(estimate, clean, weights=jnp.square(level))
    total = main + sum(parts.values())
    return total, {'main': main, **parts}

  @classmethod
  def parse_grid(cls, spec, settings):
    return np.asarray(schedules.parse_schedule(spec, dict(settings.named_schedules or ())),
                      np.float64)

  @classmethod
  def network_evaluations(cls, grid, settings):
    if settings.algorithm == 'griffin_lim':
      return 0
    return int(np.asarray(grid).shape[-1])

  @classmethod
  def check_sampling(cls, settings):
    # The reverse-diffusion settings are checked by sampling.SamplerOptions (uses_sampler_options).
    solver = settings.solver
    if settings.final_projection not in (0, 0.0, None):
      raise ValueError(f'sampling.final_projection={settings.final_projection} projects the final '
                       "sample of process 'flow', but this run's process is 'wavegrad': use "
                       'sampling.gla (GLA-Grad) for reverse diffusion, or drop the field')
    if solver != 'euler':
      raise ValueError(f"sampling.solver={solver!r} is an ODE solver of process 'flow', but this "
                       "run's process is 'wavegrad' (reverse diffusion over betas): drop "
                       '--config.sampling.solver, or use a flow checkpoint')

  @classmethod
  def uses_sampler_options(cls, settings):
    return True

  def make_sampler(self, net_fn, settings, hop_length, options=None, multi=False):
    make = sampling.make_multi_schedule_sampler if multi else sampling.make_sampler
    return make(net_fn, hop_length=int(hop_length), options=options)
