"""The one jitted scan of reverse diffusion over a schedule, and its step rules.

The ancestral step is the paper's (Chen et al., 2020, algorithm 2); eta < 1 the DDIM-style step
(Song et al., 2021) on the same continuous noise levels; `clip` and `clip_x0` the clamps of
lmnt-com/wavegrad and ivanvovk/WaveGrad; GLA-Grad's correction comes from `gla`. Schedules and
GLA step masks are traced, so a sampler compiles once per (schedule length, batch shape).
"""
import functools

import jax
import jax.numpy as jnp

from wavegrad_jax.audio import phase
from wavegrad_jax.sampling.gla import _gla_inputs
from wavegrad_jax.sampling.gla import _project_mean
from wavegrad_jax.sampling.gla import gla_corrected_eps
from wavegrad_jax.sampling.sampler_options import SamplerOptions


def schedule_terms(betas):
  """Per-step terms of a schedule of betas [N]: a dict of [N] float32 arrays.

  alpha = 1 - beta, alpha_bar = cumprod(alpha), alpha_bar_prev (1 before the first step),
  noise_level = sqrt(alpha_bar), sigma_posterior = sqrt((1 - ab_prev) / (1 - ab) * beta), and
  one_minus_alpha_bar(_prev) = 1 - alpha_bar(_prev).
  """
  betas = jnp.asarray(betas, jnp.float32)
  alphas = 1.0 - betas
  # 1 - alpha_bar through log1p / expm1: in float32, 1 - (1 - 1e-6) is off by ~6%, and the GLA
  # correction divides by its square root.
  log_alpha_bar = jnp.cumsum(jnp.log1p(-betas))
  alpha_bar = jnp.exp(log_alpha_bar)
  one_minus = -jnp.expm1(log_alpha_bar)
  alpha_bar_prev = jnp.concatenate([jnp.ones((1,), jnp.float32), alpha_bar[:-1]])
  one_minus_prev = jnp.concatenate([jnp.zeros((1,), jnp.float32), one_minus[:-1]])
  return dict(
      beta=betas, alpha=alphas, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
      one_minus_alpha_bar=one_minus, one_minus_alpha_bar_prev=one_minus_prev,
      noise_level=jnp.sqrt(alpha_bar),
      sigma_posterior=jnp.sqrt(one_minus_prev / one_minus * betas))


def _step_mean_and_std(y, eps, t, options):
  """The deterministic part [B, T] of a reverse step and the std (scalar) of its added noise."""
  keep_noise = 1.0 - t['is_last']
  eta, noise_scale = options.eta, options.noise_scale
  if eta == 1.0:
    mean = (y - t['beta'] / jnp.sqrt(t['one_minus_alpha_bar']) * eps) / jnp.sqrt(t['alpha'])
    sigma = t['sigma_posterior'] if noise_scale == 'posterior' else jnp.sqrt(t['beta'])
    return mean, keep_noise * sigma
  y0 = (y - jnp.sqrt(t['one_minus_alpha_bar']) * eps) / jnp.sqrt(t['alpha_bar'])
  sigma = eta * t['sigma_posterior'] * keep_noise
  direction = jnp.sqrt(jnp.maximum(t['one_minus_alpha_bar_prev'] - jnp.square(sigma), 0.0))
  return jnp.sqrt(t['alpha_bar_prev']) * y0 + direction * eps, sigma


def reverse_step(y, eps, z, t, options=None, **option_values):
  """One reverse step y_n -> y_{n-1} (without clipping or GLA).

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise eps_theta(y_n, x, l_n).
    z: [B, T] standard normal noise for this step.
    t: dict of scalar schedule terms at step n (see `schedule_terms`), plus 'is_last'.
    options: `SamplerOptions` (its eta and noise_scale are used); None for the defaults.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, ...).
  Returns:
    [B, T] y_{n-1}.
  """
  options = SamplerOptions.resolve(options, **option_values)
  mean, std = _step_mean_and_std(y, eps, t, options)
  return mean + std * z


def clipped_clean_estimate_eps(y, eps, t, bound):
  """eps re-derived after clamping the clean estimate to [-bound, bound] (ivanvovk/WaveGrad).

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise.
    t: dict of scalar schedule terms at step n (see `schedule_terms`).
    bound: > 0, the clamp of y0_hat = (y - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar).
  Returns:
    [B, T] eps' = (y - sqrt(alpha_bar) clip(y0_hat)) / sqrt(1 - alpha_bar), computed as
    eps + sqrt(alpha_bar) (y0_hat - clip(y0_hat)) / sqrt(1 - alpha_bar) so that it is eps exactly
    where nothing is clamped. The ancestral step taken with eps' is the posterior mean
    q(y_{n-1} | y_n, y0 = clip(y0_hat)), as in that code.
  """
  signal, noise = jnp.sqrt(t['alpha_bar']), jnp.sqrt(t['one_minus_alpha_bar'])
  y0 = (y - noise * eps) / signal
  return eps + signal * (y0 - jnp.clip(y0, -bound, bound)) / noise



def reverse_diffusion(eps_fn, params, betas, mel, rng, *, hop_length, options=None,
                      return_trajectory=False, gla_mask=None, target_magnitude=None,
                      **option_values):
  """Samples waveforms for a batch of mels by reverse diffusion over `betas`.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel, noise_level [B]) -> [B, T].
    params: passed to eps_fn (model parameters; anything for an oracle).
    betas: [N] inference schedule, N >= 1.
    mel: [B, F, n_mels] conditioning log-mels.
    rng: PRNG key; y_N uses split(rng)[0], step n (0-based, run from N-1 down to 0) uses
      split(split(rng)[1], N)[n].
    hop_length: samples per mel frame; the output has T = F * hop_length samples.
    options: `SamplerOptions` (eta, noise_scale, clip, clip_x0, gla, algorithm); None for the
      defaults (ancestral). With algorithm 'griffin_lim' the denoiser and the betas' values are
      not used: Griffin-Lim runs from y_N (drawn as below).
    return_trajectory: also return every intermediate sample.
    gla_mask: [N] bool / float, nonzero where step n (schedule index) is corrected; None uses
      options.gla.steps. Traced, so selections never recompile.
    target_magnitude: [B, T // gla hop, gla n_fft // 2 + 1] target |STFT|, for gla.magnitude
      'given' only.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, gla=...).
  Returns:
    [B, T] float32 waveform y_0, or (y_0, [N, B, T] samples y_{N-1} .. y_0) with return_trajectory
    ([1, B, T] for 'griffin_lim').
  """
  options = SamplerOptions.resolve(options, **option_values)
  gla, clip, clip_x0 = options.gla, options.clip, options.clip_x0
  terms = schedule_terms(betas)
  num_steps = terms['beta'].shape[0]
  batch, frames = mel.shape[0], mel.shape[1]
  num_samples = frames * hop_length
  # Outside the loop: the mel pseudo-inverse is one matmul per call, not per step.
  gla_mask, target = _gla_inputs(gla, gla_mask, target_magnitude, mel, num_steps, num_samples)
  init_rng, step_rng = jax.random.split(rng)
  y = jax.random.normal(init_rng, (batch, num_samples), jnp.float32)
  if options.algorithm == 'griffin_lim':
    y = phase.griffin_lim(y, target, gla.griffin_lim)
    if clip > 0:
      y = jnp.clip(y, -clip, clip)
    return (y, y[None]) if return_trajectory else y
  # PriorGrad: start from, and re-noise with, N(0, diag(std^2)) instead of N(0, I).
  noise_std = 1.0 if options.prior is None else options.prior.noise_std(mel, hop_length)
  y = y * noise_std
  step_keys = jax.random.split(step_rng, num_steps)

  def body(y, n):
    t = {k: v[n] for k, v in terms.items()}
    t['is_last'] = (n == 0).astype(jnp.float32)
    eps = eps_fn(params, y, mel, jnp.full((batch,), t['noise_level']))
    z = jax.random.normal(step_keys[n], y.shape, jnp.float32)
    # lax.cond, not a blend: unselected steps skip the STFTs at run time.
    if gla is not None and gla.placement == 'clean_estimate':
      eps = jax.lax.cond(
          gla_mask[n] != 0,
          lambda e: gla_corrected_eps(y, e, t, target, gla.griffin_lim),
          lambda e: e, eps)
    if clip_x0 > 0:
      eps = clipped_clean_estimate_eps(y, eps, t, clip_x0)
    mean, std = _step_mean_and_std(y, eps, t, options)
    if gla is not None and gla.placement == 'mean':
      mean = jax.lax.cond(gla_mask[n] != 0, lambda m: _project_mean(m, target, gla),
                          lambda m: m, mean)
    y = mean + std * noise_std * z
    if clip > 0:
      y = jnp.clip(y, -clip, clip)
    return y, (y if return_trajectory else None)

  y, trajectory = jax.lax.scan(body, y, jnp.arange(num_steps - 1, -1, -1))
  return (y, trajectory) if return_trajectory else y


def make_sampler(eps_fn, *, hop_length, options=None, **option_values):
  """A jitted sampler(params, betas [N], mel [B, F, M], rng) -> [B, F * hop] waveform.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel, noise_level [B]) -> [B, T].
    hop_length: samples per mel frame.
    options: `SamplerOptions`; None for the defaults.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, gla=...).
  Returns:
    The sampler. It also takes keyword arguments gla_mask [N] and target_magnitude (see
    `reverse_diffusion`) when options.gla is set. Compiled once per schedule length and mel shape
    (and whether gla_mask / target_magnitude are passed): schedules and GLA step masks are traced.
  """
  options = SamplerOptions.resolve(options, **option_values)
  fn = functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length, options=options)

  def sampler(params, betas, mel, rng, gla_mask=None, target_magnitude=None):
    return fn(params, betas, mel, rng, gla_mask=gla_mask, target_magnitude=target_magnitude)

  return jax.jit(sampler)


def make_multi_schedule_sampler(eps_fn, *, hop_length, options=None, **option_values):
  """A jitted sampler(params, betas [K, N], mel, rng) -> [K, B, T]: K schedules of one length.

  Every schedule sees the same mel and the same noise draws, so their outputs differ only by the
  schedule (what a schedule search compares). With options.gla, the keyword arguments gla_mask [N]
  and target_magnitude are shared by the K schedules. Options as `make_sampler`.
  """
  options = SamplerOptions.resolve(options, **option_values)
  fn = functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length, options=options)

  def one(params, betas, mel, rng, gla_mask, target_magnitude):
    return fn(params, betas, mel, rng, gla_mask=gla_mask, target_magnitude=target_magnitude)

  batched = jax.vmap(one, in_axes=(None, 0, None, None, None, None))

  def sampler(params, betas, mel, rng, gla_mask=None, target_magnitude=None):
    return batched(params, betas, mel, rng, gla_mask, target_magnitude)

  return jax.jit(sampler)


def model_eps_fn(model):
  """Adapts a WaveGrad Flax module to eps_fn(params, noisy, mel, noise_level)."""
  def eps_fn(params, noisy, mel, noise_level):
    return model.apply({'params': params}, noisy, mel, noise_level)
  return eps_fn
