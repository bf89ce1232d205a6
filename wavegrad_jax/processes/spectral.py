"""Spectral losses on a process's one-step estimate of the clean waveform.

- Multi-resolution STFT loss (Yamamoto et al., Parallel WaveGAN, arXiv 1910.11480,
  kan-bayashi/ParallelWaveGAN stft_loss.py): per resolution, spectral convergence
  ||S_hat - S||_F / ||S||_F over the batch plus mean |log S_hat - log S|, averaged over
  resolutions; S = |STFT| with a 1e-5 floor.
- Flow2GAN's energy-scaled STFT loss (arXiv 2512.23278, k2-fsa/Flow2GAN): mean |STFT(x_hat - x)|
  weighted per bin by clamp((|STFT(x)| + eps)^-0.5, 0.01, 100), so quiet bins count as much as
  loud ones; the weight is a constant of the target (no gradient).
Each term carries its weight from config.process.spectral; a zero weight leaves it out entirely.
"""
import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp

from wavegrad_jax.audio import frontend as audio

MAGNITUDE_FLOOR = 1e-5
ENERGY_EPS = 1e-5


def _magnitudes(x, n_fft, hop, win):
  return jnp.abs(audio.stft(x, n_fft, hop, win))


def mrstft_loss(estimate, target, resolutions, weights=None):
  """The multi-resolution STFT loss of a batch: spectral convergence + log magnitude (a scalar).

  Spectral convergence is taken over the whole batch, as Parallel WaveGAN does
  (||S_hat - S||_F / ||S||_F with the Frobenius norms summed over examples): per example, a
  nearly silent crop would divide by almost nothing.

  Args:
    estimate, target: [B, T] waveforms (samples), T at least the largest hop.
    resolutions: ((n_fft, hop, win), ...) in samples.
    weights: [B] per-example weights of both terms, or None.
  Returns:
    float32 scalar: the mean over resolutions of SC + mean |log S_hat - log S|.
  """
  w = jnp.ones(estimate.shape[:1], jnp.float32) if weights is None else weights
  total = 0.0
  for n_fft, hop, win in resolutions:
    s_hat = jnp.maximum(_magnitudes(estimate, n_fft, hop, win), MAGNITUDE_FLOOR)
    s = jnp.maximum(_magnitudes(target, n_fft, hop, win), MAGNITUDE_FLOOR)
    error = jnp.sum(w * jnp.sum(jnp.square(s_hat - s), axis=(-2, -1)))
    energy = jnp.sum(w * jnp.sum(jnp.square(s), axis=(-2, -1)))
    sc = jnp.sqrt(error) / jnp.sqrt(jnp.maximum(energy, 1e-12))
    log_mag = jnp.mean(w * jnp.mean(jnp.abs(jnp.log(s_hat) - jnp.log(s)), axis=(-2, -1)))
    total = total + sc + log_mag
  return total / len(resolutions)


def energy_scaled_terms(estimate, target, resolutions):
  """[B] Flow2GAN's energy-scaled STFT loss per example, averaged over resolutions.

  Args:
    estimate, target: [B, T] waveforms.
    resolutions: ((n_fft, hop, win), ...).
  Returns:
    [B] float32: mean over bins of |STFT(estimate - target)| * clamp((|STFT(target)| + eps)^-0.5,
    0.01, 100).
  """
  total = 0.0
  for n_fft, hop, win in resolutions:
    error = _magnitudes(estimate - target, n_fft, hop, win)
    weight = jax.lax.stop_gradient(
        jnp.clip((_magnitudes(target, n_fft, hop, win) + ENERGY_EPS) ** -0.5, 0.01, 100.0))
    total = total + jnp.mean(error * weight, axis=(-2, -1))
  return total / len(resolutions)


@dataclasses.dataclass(frozen=True)
class SpectralLosses:
  """Weights and resolutions of the spectral losses (see the module docstring).

  Attributes:
    mrstft_weight: weight of the multi-resolution STFT loss (>= 0).
    energy_weight: weight of Flow2GAN's energy-scaled STFT loss (>= 0).
    resolutions: ((n_fft, hop, win), ...) in samples.
  """
  mrstft_weight: float = 0.0
  energy_weight: float = 0.0
  resolutions: Tuple[Tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024),
                                                   (2048, 512, 2048))

  def __post_init__(self):
    for name in ('mrstft_weight', 'energy_weight'):
      value = getattr(self, name)
      if not value >= 0.0:
        raise ValueError(f'process.spectral.{name} must be >= 0 (0 switches it off), got {value}')
    if not self.resolutions:
      raise ValueError('process.spectral.resolutions needs at least one (n_fft, hop, win)')
    for r in self.resolutions:
      if len(r) != 3 or not all(int(v) > 0 for v in r) or r[2] > r[0]:
        raise ValueError('process.spectral.resolutions must be (n_fft, hop, win) triples of '
                         f'positive sizes with win <= n_fft, got {r}')

  def __call__(self, estimate, target, weights=None):
    """{'mrstft': scalar, 'energy_stft': scalar} for the nonzero weights, each already weighted.

    Args:
      estimate, target: [B, T] waveforms.
      weights: [B] per-example weights (e.g. the noise level squared), or None.
    """
    w = 1.0 if weights is None else weights
    out = {}
    if self.mrstft_weight > 0:
      out['mrstft'] = self.mrstft_weight * mrstft_loss(estimate, target, self.resolutions,
                                                       weights)
    if self.energy_weight > 0:
      out['energy_stft'] = self.energy_weight * jnp.mean(
          w * energy_scaled_terms(estimate, target, self.resolutions))
    return out

  @classmethod
  def from_config(cls, config):
    """The losses of config.process.spectral, or None when every weight is 0 (or no section)."""
    section = config.get('process', {}).get('spectral', None) if hasattr(config, 'get') else None
    if section is None:
      return None
    losses = cls(
        mrstft_weight=float(section.get('mrstft_weight', 0.0)),
        energy_weight=float(section.get('energy_weight', 0.0)),
        resolutions=tuple(tuple(int(v) for v in r) for r in section.get(
            'resolutions', cls.resolutions)))
    if losses.mrstft_weight == 0 and losses.energy_weight == 0:
      return None
    return losses
