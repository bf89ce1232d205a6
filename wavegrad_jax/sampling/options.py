"""The sampling package's edge: the config read into its typed options, and thin adapters.

Each adapter builds the typed options (`SamplerOptions.from_config`, `GLAOptions.from_config`,
`ScheduleStartOptions.from_config`) and calls the typed function; callers above the trainer's
level (processes' wavegrad branch, inference, evaluation, tests) use them. The only module of
this package that takes a ConfigDict outside those classmethods.
"""
import dataclasses

from wavegrad_jax.sampling import presets
from wavegrad_jax.sampling import scan
from wavegrad_jax.sampling.gla import GLAOptions
from wavegrad_jax.sampling.sampler_options import SamplerOptions
from wavegrad_jax.sampling.start_check import ScheduleCheckedSampler
from wavegrad_jax.sampling.start_check import ScheduleStartOptions
from wavegrad_jax.sampling.start_check import check_schedule_start


def gla_options_from_config(config, force=False):
  """`GLAOptions.from_config(config, force)`: config.sampling.gla's options, or None when off."""
  return GLAOptions.from_config(config, force=force)


def sampler_options_from_config(config):
  """`SamplerOptions.from_config` as keyword arguments of `make_sampler`, hop_length included.

  Returns:
    dict(hop_length (samples per frame), eta, noise_scale, clip, gla, ...): one entry per
    `SamplerOptions` field.
  """
  options = SamplerOptions.from_config(config)
  return dict(hop_length=int(config.audio.hop_length),
              **{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})


def speech_rms_estimate_from_config(config):
  """`ScheduleStartOptions.speech_rms_estimate` of a config (full scale 1)."""
  return ScheduleStartOptions.from_config(config).speech_rms_estimate()


def check_schedule_start_from_config(betas, config, name, speech_rms=None, where=''):
  """`check_schedule_start` with the config's `ScheduleStartOptions` (None: not checked)."""
  return check_schedule_start(betas, ScheduleStartOptions.from_config(config), name,
                              speech_rms=speech_rms, where=where)


def sampler_from_config(model, config):
  """The jitted model sampler with the options of `config.sampling` (GLA included).

  It warns once per schedule that does not start from noise (`check_schedule_start`).
  """
  sampler = scan.make_sampler(scan.model_eps_fn(model), hop_length=int(config.audio.hop_length),
                              options=SamplerOptions.from_config(config))
  return ScheduleCheckedSampler(sampler, ScheduleStartOptions.from_config(config))


def multi_schedule_sampler_from_config(model, config):
  """`make_multi_schedule_sampler` for a Flax model with the options of `config.sampling`."""
  return scan.make_multi_schedule_sampler(
      scan.model_eps_fn(model), hop_length=int(config.audio.hop_length),
      options=SamplerOptions.from_config(config))


def with_sampling_fields_from_config(config, changes):
  """A copy of `config` with config.sampling fields set from `changes` (config is not changed).

  Args:
    config: a full config.
    changes: {field: value}, a nested dict for a sub-section (e.g. {'gla': {'enabled': True}}).
  Raises:
    ValueError: a field the config's sampling section does not have.
  """
  out = config.copy_and_resolve_references()
  with out.unlocked():
    presets.set_fields(out.sampling, changes)
  return out


def preset_from_config(config, name):
  """A copy of `config` whose sampling section runs the preset `name` (config is not changed).

  Raises:
    ValueError: unknown preset name, or a preset of another process (the message lists them).
  """
  process = config.get('process', None)
  presets.check_preset(name,
                       process.get('name', 'wavegrad') if process is not None else 'wavegrad')
  return with_sampling_fields_from_config(config, presets.SAMPLER_PRESETS[name])
