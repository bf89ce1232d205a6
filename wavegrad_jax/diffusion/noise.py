"""The forward process and the training objective as pure JAX functions.

Waveforms are [B, T] float32 in [-1, 1]; noise levels l = sqrt(alpha_bar) are [B] in (0, 1].
"""
import jax
import jax.numpy as jnp


def sample_noise_level(rng, levels, batch_size):
  """The paper's continuous noise-level sampler.

  Draws s ~ U{1..S}, then l ~ U(l_s, l_{s-1}), where `levels` = [l_0 = 1, l_1, ..., l_S] comes
  from `schedules.noise_levels` of the training schedule.

  Args:
    rng: a PRNG key.
    levels: [S + 1] decreasing noise levels, levels[0] = 1.
    batch_size: number of levels to draw.
  Returns:
    [batch_size] float32 noise levels.
  """
  levels = jnp.asarray(levels, jnp.float32)
  step_rng, level_rng = jax.random.split(rng)
  s = jax.random.randint(step_rng, (batch_size,), 1, levels.shape[0])
  u = jax.random.uniform(level_rng, (batch_size,), jnp.float32)
  return levels[s] + u * (levels[s - 1] - levels[s])


def add_noise(clean, noise, noise_level):
  """Forward noising y = l * y0 + sqrt(1 - l^2) * eps.

  Args:
    clean: [B, T] waveform y0.
    noise: [B, T] standard normal eps.
    noise_level: [B] levels l.
  Returns:
    [B, T] noisy waveform.
  """
  l = noise_level[:, None]
  # (1 - l)(1 + l) keeps precision where l is within float32 rounding of 1 (the lowest levels).
  return l * clean + jnp.sqrt((1.0 - l) * (1.0 + l)) * noise


def l1_loss(predicted_noise, noise):
  """Mean absolute error between predicted and true noise, a scalar."""
  return jnp.mean(jnp.abs(predicted_noise - noise))


def l2_loss(predicted_noise, noise):
  """Mean squared error between predicted and true noise, a scalar."""
  return jnp.mean(jnp.square(predicted_noise - noise))


LOSSES = {'l1': l1_loss, 'l2': l2_loss}


def denoising_loss(eps_fn, params, rng, clean, mel, levels, loss='l1', noise_std=None):
  """The WaveGrad objective on one batch.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T].
    params: parameters passed to eps_fn.
    rng: PRNG key for the noise level and the noise.
    clean: [B, T] clean waveform crops.
    mel: [B, T / hop, n_mels] conditioning.
    levels: [S + 1] training-schedule noise levels.
    loss: 'l1' (the paper) or 'l2'.
    noise_std: None for the paper's N(0, I) noise, or [B, T] per-sample std of a data-dependent
      prior (`priors.Prior.noise_std`, PriorGrad): the noise is std * z and its error is weighed
      by 1 / std (Sigma^-1), so a frame's loss does not shrink with its prior's scale.
  Returns:
    (scalar loss, [B] sampled noise levels).
  """
  level_rng, noise_rng = jax.random.split(rng)
  noise_level = sample_noise_level(level_rng, levels, clean.shape[0])
  noise = jax.random.normal(noise_rng, clean.shape, jnp.float32)
  if noise_std is None:
    noisy = add_noise(clean, noise, noise_level)
    return LOSSES[loss](eps_fn(params, noisy, mel, noise_level), noise), noise_level
  noise = noise * noise_std
  predicted = eps_fn(params, add_noise(clean, noise, noise_level), mel, noise_level)
  return LOSSES[loss](predicted / noise_std, noise / noise_std), noise_level
