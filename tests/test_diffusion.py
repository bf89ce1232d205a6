"""The continuous noise-level sampler, forward noising and loss."""
import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax.diffusion import schedules


def _mixture_cdf(x, levels):
  """CDF of l: s ~ U{1..S}, then l ~ U(l_s, l_{s-1}), evaluated in float64."""
  lo, hi = levels[1:], levels[:-1]
  return np.clip((x[:, None] - lo) / (hi - lo), 0, 1).mean(axis=1)


def test_noise_level_distribution_matches_paper_sampler():
  levels = schedules.noise_levels(schedules.linear_betas(1e-6, 0.01, 1000))
  draws = np.asarray(diffusion.sample_noise_level(jax.random.key(0), levels, 200_000), np.float64)
  assert draws.min() >= levels[-1] - 1e-6 and draws.max() <= 1.0
  # Kolmogorov-Smirnov distance to the exact mixture CDF (critical value at 1e-3: ~0.0044).
  xs = np.sort(draws)
  empirical = np.arange(1, xs.size + 1) / xs.size
  assert np.max(np.abs(empirical - _mixture_cdf(xs, levels))) < 0.0044


def test_each_interval_is_drawn_equally_often():
  levels = schedules.noise_levels(schedules.linear_betas(0.05, 0.3, 8))
  draws = np.asarray(diffusion.sample_noise_level(jax.random.key(1), levels, 80_000))
  counts = np.array([np.sum((draws <= levels[s - 1]) & (draws > levels[s])) for s in range(1, 9)])
  np.testing.assert_allclose(counts / draws.size, 1 / 8, atol=0.006)


def test_add_noise_and_loss():
  clean = jnp.full((2, 4), 0.5)
  noise = jnp.ones((2, 4))
  level = jnp.array([1.0, 0.6])
  noisy = diffusion.add_noise(clean, noise, level)
  np.testing.assert_allclose(noisy[0], 0.5, rtol=1e-6)
  np.testing.assert_allclose(noisy[1], 0.6 * 0.5 + 0.8, rtol=1e-6)
  assert float(diffusion.l1_loss(noise, noise)) == 0.0
  np.testing.assert_allclose(diffusion.l1_loss(noise + 0.25, noise), 0.25, rtol=1e-6)


def test_denoising_loss_of_perfect_predictor_is_zero_and_grad_flows():
  levels = schedules.noise_levels(schedules.linear_betas(1e-6, 0.01, 1000))
  clean = jax.random.normal(jax.random.key(2), (3, 64)) * 0.3

  def cheat_eps(params, noisy, mel, l):  # recovers eps exactly from the known clean signal
    del mel
    return params * (noisy - l[:, None] * clean) / jnp.sqrt(1 - jnp.square(l[:, None]))

  loss, drawn = diffusion.denoising_loss(cheat_eps, 1.0, jax.random.key(3), clean, None, levels)
  assert drawn.shape == (3,)
  assert float(loss) < 1e-4
  grad = jax.grad(lambda p: diffusion.denoising_loss(cheat_eps, p, jax.random.key(3), clean, None,
                                                     levels)[0])(2.0)
  assert float(grad) > 0
