"""Analytic denoisers for tests: exact optimal noise predictors for Gaussian data."""
import jax.numpy as jnp


def gaussian_eps(params, noisy, mel, noise_level):
  """E[eps | y] for y0 ~ N(0, s^2) and y = l y0 + sqrt(1 - l^2) eps; params = s (data std).

  eps*(y, l) = sqrt(1 - l^2) y / (l^2 s^2 + 1 - l^2).
  """
  del mel
  l = noise_level[:, None]
  var = jnp.square(l) * jnp.square(params) + 1.0 - jnp.square(l)
  return jnp.sqrt(1.0 - jnp.square(l)) * noisy / var
