"""The processes' edge: the config read into a process, its `SamplingSettings` and its sampler.

Follows the layout's convention (README "Layout"): below the trainer functions take typed
options; this module alone reads a ConfigDict. Each function is a thin adapter: it reads the
process's name (config.process.name; configs written before processes had names mean
'wavegrad'), `base.SamplingSettings.from_config` (config.sampling) and, for `sampling`'s
samplers, `sampling.SamplerOptions.from_config`, then calls the typed method of the process.
"""
from wavegrad_jax import sampling
from wavegrad_jax.processes import registry
from wavegrad_jax.processes.base import SamplingSettings


def process_name_from_config(config):
  """The process a config names; configs written before processes had names mean 'wavegrad'."""
  section = config.get('process', None) if hasattr(config, 'get') else None
  return section.get('name', registry.DEFAULT_PROCESS) if section is not None else (
      registry.DEFAULT_PROCESS)


def process_class_from_config(config):
  """The registered class of the process a config names (its classmethods need no build)."""
  return registry.process_class(process_name_from_config(config))


def from_config(config):
  """The `base.Process` of a full config (config.process, config.diffusion, config.audio).

  Raises:
    ValueError: an unknown process or an invalid option, with the field and the valid values.
  """
  return process_class_from_config(config).from_config(config)


def recorded_fields_from_config(config):
  """`registry.recorded_fields` of a config: what a run records of its process (a dict)."""
  name = process_name_from_config(config)
  registry.check_name(name)
  process = config.get('process', None) if hasattr(config, 'get') else None
  section = process.get(name, None) if process is not None else None
  section = {} if section is None else (
      section.to_dict() if hasattr(section, 'to_dict') else dict(section))
  return registry.recorded_fields(name, section)


def parse_grid_from_config(config, spec):
  """The sampler grid of `spec` for the config's process: betas [N] or times [N + 1], float64."""
  return process_class_from_config(config).parse_grid(spec, SamplingSettings.from_config(config))


def network_evaluations_from_config(config, grid):
  """Network calls of one sample over `grid` under config.sampling (0 for Griffin-Lim alone)."""
  return process_class_from_config(config).network_evaluations(
      grid, SamplingSettings.from_config(config))


def check_sampling_from_config(config):
  """Raises ValueError (one line) for sampling settings the config's process cannot run."""
  cls, settings = process_class_from_config(config), SamplingSettings.from_config(config)
  cls.check_sampling(settings)
  if cls.uses_sampler_options(settings):
    sampling.SamplerOptions.from_config(config)


def make_sampler_from_config(process, net_fn, config, multi=False):
  """`process.make_sampler` of net_fn(params, x [B, T], mel, c [B]) under config.sampling and
  config.audio.hop_length (samples); see `base.Process.make_sampler`."""
  settings = SamplingSettings.from_config(config)
  process.check_sampler(settings)
  options = (sampling.SamplerOptions.from_config(config)
             if process.uses_sampler_options(settings) else None)
  return process.make_sampler(net_fn, settings, int(config.audio.hop_length), options,
                              multi=multi)


def sampler_from_config(model, config, multi=False):
  """The jitted sampler of a Flax model under its config's process and config.sampling.

  sampler(params, grid, mel [B, F, M], rng, gla_mask=None, target_magnitude=None) -> [B, T]
  ([K, B, T] with multi=True and grids [K, ...]). 'wavegrad' keeps `sampling.sampler_from_config`
  (which warns once per schedule that does not start from noise).
  """
  if process_name_from_config(config) == 'wavegrad':
    if multi:
      return sampling.multi_schedule_sampler_from_config(model, config)
    return sampling.sampler_from_config(model, config)
  return make_sampler_from_config(from_config(config), sampling.model_eps_fn(model), config,
                                  multi=multi)
