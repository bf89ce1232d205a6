"""The diffusion package's edge: thin adapters from a config to its typed options.

`priors.PriorOptions.from_config` reads config.diffusion and config.audio; the adapters here build
those options and call the typed function, for callers above the trainer's level.
"""
from wavegrad_jax.diffusion import priors


def prior_from_config(config):
  """`priors.make_prior` of config.diffusion: the `Prior`, or None for N(0, I)."""
  return priors.make_prior(priors.PriorOptions.from_config(config))


def needs_energy_range_from_config(config):
  """`priors.needs_energy_range` of config.diffusion (PriorGrad without a recorded range)."""
  return priors.needs_energy_range(priors.PriorOptions.from_config(config))
