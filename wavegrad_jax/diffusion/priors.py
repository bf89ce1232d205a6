"""Data-dependent diffusion priors: PriorGrad's mel-conditioned noise (Lee et al., ICLR 2022).

The paper's model diffuses towards N(0, I). PriorGrad diffuses towards N(0, Sigma) with a diagonal
Sigma that follows the conditioning mel: each sample's noise std is its frame's normalised energy,

    std_f = max((e_f - e_min) / (e_max - e_min), std_min),   e_f = sqrt(sum_m linear_mel[f, m]),

repeated over the frame's hop samples, where (e_min, e_max) are the smallest and largest frame
energies of the training data. With an energy cap E (diffusion.prior_max_energy, > 0), as the
official code (microsoft/NeuralSpeech PriorGrad-vocoder: params.py max_energy_override=4.,
dataset.py), every frame's energy is first clamped to E and E replaces e_max:

    std_f = max((min(e_f, E) - e_min) / (E - e_min), std_min),

so std_f never exceeds 1 whatever the mel (uncapped, a frame louder than any training frame gets
a std above 1, without bound); their comment: E = 4 "for volume-normalized waveform with HiFi-GAN
STFT ... gives reasonable range that clips outliers", and a lower E puts more frames at std 1. Our
frontends' |STFT| has HiFi-GAN's scale (unnormalised, n_fft 1024 at 22,050 Hz for the tiny
configs; 0.9 peak instead of 0.95), so E = 4 means about the same there. Silent frames start (and are re-noised) almost silent, so the
network spends its capacity on speech, which the PriorGrad paper reports converges several times
faster. With this prior:
  training: y = l y0 + sqrt(1 - l^2) std * z with z ~ N(0, I), and the loss weighs the noise error
    by Sigma^-1: mean |eps_theta - std * z| / std (L1) or its square (L2). The official code trains
    with the L2 form only (learner.py scaled_mse_loss: mean(((eps_theta - std * z) / std)^2));
    our L1 form, |.| / std, is its analogue for the paper's L1 loss (diffusion.loss = 'l1', our
    default), weighting each sample's error by 1 / std as the L2 form weighs its square by
    1 / std^2;
  sampling: y_N = std * z, and every step's injected noise is std * z.
The network still predicts the noise std * z; the reverse-step formulas are unchanged.

`Prior` is static (hashable), so jitted steps and samplers take it as a compile-time option.
"""
import dataclasses
from typing import Optional

import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import conventions as mel_conventions

PRIORS = ('standard', 'priorgrad')


@dataclasses.dataclass(frozen=True)
class Prior:
  """PriorGrad's noise std from a mel (see the module docstring).

  Attributes:
    frontend: `mel_conventions.Frontend` of the conditioning mels (to undo their log/normalisation).
    energy_min, energy_max: frame-energy range of the training data (linear-mel units).
    std_min: the smallest std a frame gets (PriorGrad: 0.1).
    max_energy: the energy cap E (linear-mel units): > 0 clamps each frame's energy to E and
      normalises by E - energy_min instead of energy_max - energy_min (the official code's
      max_energy_override; 4 there); 0 no cap (the runs made before this field).
  """
  frontend: mel_conventions.Frontend
  energy_min: float
  energy_max: float
  std_min: float = 0.1
  max_energy: float = 0.0

  def __post_init__(self):
    if not self.energy_max > self.energy_min >= 0.0:
      raise ValueError('diffusion.prior_energy_range must be (min, max) frame energies with '
                       f'max > min >= 0, got ({self.energy_min}, {self.energy_max}); leave it '
                       'empty to measure it on the training data')
    if not 0.0 < self.std_min <= 1.0:
      raise ValueError(f'diffusion.prior_std_min must lie in (0, 1], got {self.std_min}')
    if self.max_energy and not self.max_energy > self.energy_min:
      raise ValueError(f'diffusion.prior_max_energy ({self.max_energy}) must exceed the smallest '
                       f'training frame energy ({self.energy_min}), or be 0 for no cap')
    if not self.max_energy >= 0.0:
      raise ValueError(f'diffusion.prior_max_energy must be >= 0 (0: no cap), got '
                       f'{self.max_energy}')

  def frame_std(self, mel):
    """[..., frames] noise std of each frame of `mel` [..., frames, n_mels] (convention units)."""
    energy = frame_energy(mel, self.frontend, jnp)
    top = self.energy_max
    if self.max_energy:
      energy, top = jnp.minimum(energy, self.max_energy), self.max_energy
    scaled = (energy - self.energy_min) / (top - self.energy_min)
    return jnp.maximum(scaled, self.std_min).astype(jnp.float32)

  def noise_std(self, mel, hop_length):
    """[B, frames * hop_length] per-sample noise std for mels [B, frames, n_mels]."""
    return jnp.repeat(self.frame_std(mel), int(hop_length), axis=-1)


def frame_energy(mel, frontend, xp=np):
  """sqrt(sum over bands of the linear mel): [..., frames] for mels [..., frames, n_mels]."""
  return xp.sqrt(xp.sum(mel_conventions.decompress(mel, frontend, xp=xp), axis=-1))


def energy_range(mels, frontend):
  """(min, max) frame energy over mels, each [frames_i, n_mels] in the frontend's units.

  Args:
    mels: an iterable of mels (e.g. every training utterance's).
    frontend: `mel_conventions.Frontend` the mels were made with
      (`Frontend.from_config(config.audio)`).
  Returns:
    (float, float), linear-mel units.
  Raises:
    ValueError: no mel frames.
  """
  lo, hi = np.inf, -np.inf
  for mel in mels:
    e = frame_energy(np.asarray(mel, np.float64), frontend, np)
    if e.size:
      lo, hi = min(lo, float(e.min())), max(hi, float(e.max()))
  if not np.isfinite(lo):
    raise ValueError('no mel frames to measure the PriorGrad energy range on')
  return lo, hi


def check_name(name):
  if name not in PRIORS:
    raise ValueError(f'diffusion.prior must be one of {PRIORS}, got {name!r}')


@dataclasses.dataclass(frozen=True)
class PriorOptions:
  """The prior's settings as config.diffusion names them (hashable), before the prior is built.

  Attributes:
    frontend: `mel_conventions.Frontend` of the conditioning mels (config.audio); None for the
      standard prior, which does not read the mels.
    prior: 'standard' (N(0, I)) or 'priorgrad'.
    prior_energy_range: (min, max) frame energies of the training data (linear-mel units), or ()
      when not yet measured (training measures and records it).
    prior_std_min: the smallest std a frame gets (PriorGrad: 0.1).
    prior_max_energy: the energy cap E (linear-mel units), 0 for none (see `Prior.max_energy`).
  """
  frontend: Optional[mel_conventions.Frontend] = None
  prior: str = 'standard'
  prior_energy_range: tuple = ()
  prior_std_min: float = 0.1
  prior_max_energy: float = 0.0

  def __post_init__(self):
    check_name(self.prior)
    object.__setattr__(self, 'prior_energy_range',
                       tuple(float(e) for e in self.prior_energy_range))

  @classmethod
  def from_config(cls, config):
    """The options of config.diffusion and config.audio.

    A config without diffusion.prior_max_energy (a run saved before the field) has no cap, so that
    its checkpoints sample with the prior they were trained with.

    Raises:
      ValueError: an unknown prior name.
    """
    d = config.diffusion
    name = d.get('prior', 'standard')
    check_name(name)
    return cls(frontend=(None if name == 'standard'
                         else mel_conventions.Frontend.from_config(config.audio)),
               prior=name,
               prior_energy_range=tuple(d.get('prior_energy_range', ()) or ()),
               prior_std_min=float(d.get('prior_std_min', 0.1)),
               prior_max_energy=float(d.get('prior_max_energy', 0.0) or 0.0))


def needs_energy_range(options):
  """Whether `PriorOptions` ask for PriorGrad with no recorded energy range (training adds it)."""
  return options.prior == 'priorgrad' and not options.prior_energy_range


def make_prior(options):
  """The `Prior` of `PriorOptions`, or None for the standard N(0, I).

  Raises:
    ValueError: a bad std_min or max_energy, or PriorGrad without an energy range (training
      measures and records one; a run's saved config always has it).
  """
  if options.prior == 'standard':
    return None
  energy = options.prior_energy_range
  if options.frontend is None:
    raise ValueError("diffusion.prior='priorgrad' needs the mels' frontend (PriorOptions.frontend)")
  if len(energy) != 2:
    raise ValueError("diffusion.prior='priorgrad' needs diffusion.prior_energy_range = (min, max) "
                     'frame energies of the training data; training measures and records it, so '
                     "use the run's config (workdir/config.json) or set it explicitly")
  return Prior(frontend=options.frontend, energy_min=energy[0], energy_max=energy[1],
               std_min=options.prior_std_min, max_energy=options.prior_max_energy)
