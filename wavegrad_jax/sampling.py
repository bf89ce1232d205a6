"""Reverse diffusion: one jitted scan over a schedule of any length (6 to 1000 steps).

The denoiser is any function eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T],
so the trained model and analytic oracles in tests plug in alike. Schedules are traced arrays, so a
sampler compiles once per (schedule length, batch shape), never per step or per schedule.
"""
import functools

import jax
import jax.numpy as jnp

NOISE_SCALES = ('posterior', 'beta')


def _check_options(noise_scale, eta):
  if noise_scale not in NOISE_SCALES:
    raise ValueError(f'noise_scale must be one of {NOISE_SCALES}, got {noise_scale!r}')
  if not 0.0 <= eta <= 1.0:
    raise ValueError(f'eta must lie in [0, 1] (0 deterministic, 1 ancestral), got {eta}')
  if noise_scale == 'beta' and eta != 1.0:
    raise ValueError("noise_scale='beta' defines the ancestral sampler only; use eta=1.0 or "
                     "noise_scale='posterior'")


def schedule_terms(betas):
  """Per-step terms of a schedule of betas [N]: a dict of [N] float32 arrays.

  alpha = 1 - beta, alpha_bar = cumprod(alpha), alpha_bar_prev (1 before the first step),
  noise_level = sqrt(alpha_bar) and sigma_posterior = sqrt((1 - ab_prev) / (1 - ab) * beta).
  """
  betas = jnp.asarray(betas, jnp.float32)
  alphas = 1.0 - betas
  alpha_bar = jnp.cumprod(alphas)
  alpha_bar_prev = jnp.concatenate([jnp.ones((1,), jnp.float32), alpha_bar[:-1]])
  return dict(
      beta=betas, alpha=alphas, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
      noise_level=jnp.sqrt(alpha_bar),
      sigma_posterior=jnp.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas))


def reverse_step(y, eps, z, t, *, noise_scale='posterior', eta=1.0):
  """One reverse step y_n -> y_{n-1}.

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise eps_theta(y_n, x, l_n).
    z: [B, T] standard normal noise for this step.
    t: dict of scalar schedule terms at step n (see `schedule_terms`), plus 'is_last'.
    noise_scale: 'posterior' or 'beta' (ancestral sampler only).
    eta: 1 gives the paper's ancestral step; below 1 the DDIM-style step with noise eta * sigma,
      0 deterministic.
  Returns:
    [B, T] y_{n-1}.
  """
  keep_noise = 1.0 - t['is_last']
  if eta == 1.0:
    mean = (y - t['beta'] / jnp.sqrt(1.0 - t['alpha_bar']) * eps) / jnp.sqrt(t['alpha'])
    sigma = t['sigma_posterior'] if noise_scale == 'posterior' else jnp.sqrt(t['beta'])
    return mean + keep_noise * sigma * z
  y0 = (y - jnp.sqrt(1.0 - t['alpha_bar']) * eps) / jnp.sqrt(t['alpha_bar'])
  sigma = eta * t['sigma_posterior'] * keep_noise
  direction = jnp.sqrt(jnp.maximum(1.0 - t['alpha_bar_prev'] - jnp.square(sigma), 0.0))
  return jnp.sqrt(t['alpha_bar_prev']) * y0 + direction * eps + sigma * z


def reverse_diffusion(eps_fn, params, betas, mel, rng, *, hop_length, noise_scale='posterior',
                      clip=0.0, eta=1.0, return_trajectory=False):
  """Samples waveforms for a batch of mels by reverse diffusion over `betas`.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel, noise_level [B]) -> [B, T].
    params: passed to eps_fn (model parameters; anything for an oracle).
    betas: [N] inference schedule, N >= 1.
    mel: [B, F, n_mels] conditioning log-mels.
    rng: PRNG key; y_N uses split(rng)[0], step n (0-based, run from N-1 down to 0) uses
      split(split(rng)[1], N)[n].
    hop_length: samples per mel frame; the output has T = F * hop_length samples.
    noise_scale: 'posterior' or 'beta'.
    clip: if > 0, y is clipped to [-clip, clip] after each step.
    eta: 1 ancestral, 0 deterministic, in between interpolates the injected noise.
    return_trajectory: also return every intermediate sample.
  Returns:
    [B, T] float32 waveform y_0, or (y_0, [N, B, T] samples y_{N-1} .. y_0) with return_trajectory.
  """
  _check_options(noise_scale, eta)
  terms = schedule_terms(betas)
  num_steps = terms['beta'].shape[0]
  batch, frames = mel.shape[0], mel.shape[1]
  init_rng, step_rng = jax.random.split(rng)
  y = jax.random.normal(init_rng, (batch, frames * hop_length), jnp.float32)
  step_keys = jax.random.split(step_rng, num_steps)

  def body(y, n):
    t = {k: v[n] for k, v in terms.items()}
    t['is_last'] = (n == 0).astype(jnp.float32)
    eps = eps_fn(params, y, mel, jnp.full((batch,), t['noise_level']))
    z = jax.random.normal(step_keys[n], y.shape, jnp.float32)
    y = reverse_step(y, eps, z, t, noise_scale=noise_scale, eta=eta)
    if clip > 0:
      y = jnp.clip(y, -clip, clip)
    return y, (y if return_trajectory else None)

  y, trajectory = jax.lax.scan(body, y, jnp.arange(num_steps - 1, -1, -1))
  return (y, trajectory) if return_trajectory else y


def make_sampler(eps_fn, *, hop_length, noise_scale='posterior', clip=0.0, eta=1.0):
  """A jitted sampler(params, betas [N], mel [B, F, M], rng) -> [B, F * hop] waveform.

  Compiled once per schedule length and mel shape.
  """
  _check_options(noise_scale, eta)
  return jax.jit(functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length,
                                   noise_scale=noise_scale, clip=clip, eta=eta))


def make_multi_schedule_sampler(eps_fn, *, hop_length, noise_scale='posterior', clip=0.0, eta=1.0):
  """A jitted sampler(params, betas [K, N], mel, rng) -> [K, B, T]: K schedules of one length.

  Every schedule sees the same mel and the same noise draws, so their outputs differ only by the
  schedule (what a schedule search compares).
  """
  _check_options(noise_scale, eta)
  fn = functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length,
                         noise_scale=noise_scale, clip=clip, eta=eta)
  return jax.jit(jax.vmap(fn, in_axes=(None, 0, None, None)))


def model_eps_fn(model):
  """Adapts a WaveGrad Flax module to eps_fn(params, noisy, mel, noise_level)."""
  def eps_fn(params, noisy, mel, noise_level):
    return model.apply({'params': params}, noisy, mel, noise_level)
  return eps_fn


def sampler_from_config(model, config):
  """The jitted model sampler with the options of `config.sampling`."""
  s = config.sampling
  return make_sampler(model_eps_fn(model), hop_length=config.audio.hop_length,
                      noise_scale=s.noise_scale, clip=s.clip, eta=s.eta)
