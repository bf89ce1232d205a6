"""Generative processes: how a training example is noised, what the network predicts, and how a
sampler walks back from the source distribution to speech.

Owns: the `Process` interface (`base.py`), the paper's noise-level process (`wavegrad.py`), flow
matching (`flow.py`), the spectral losses on a process's one-step estimate (`spectral.py`), and the
registry `PROCESSES` that `config.process.name` chooses from. May import: jax, numpy and the maths
modules of the library (`diffusion`, `schedules`, `priors`, `sampling`, `audio`); never a Flax
module, training, inference or evaluation code, and never absl flags.

A new process is one module defining a `base.Process` subclass plus one entry in `PROCESSES`.
Every network is called through the same function, net_fn(params, x [B, T], mel [B, F, M],
scalar [B]) -> [B, T], so any registered model serves any process.
"""
from wavegrad_jax.processes import base
from wavegrad_jax.processes import flow
from wavegrad_jax.processes import wavegrad

Process = base.Process  # the interface a new process implements

DEFAULT_PROCESS = 'wavegrad'

# name -> the class whose `from_config(config)` builds it.
PROCESSES = {
    'wavegrad': wavegrad.WaveGradProcess,
    'flow': flow.FlowProcess,
}


def process_name(config):
  """The process a config names; configs written before processes had names mean 'wavegrad'."""
  section = config.get('process', None) if hasattr(config, 'get') else None
  name = section.get('name', DEFAULT_PROCESS) if section is not None else DEFAULT_PROCESS
  return name


def check_name(name):
  """Raises ValueError naming the choices unless `name` is a registered process."""
  if name not in PROCESSES:
    raise ValueError(f'config.process.name must be one of {sorted(PROCESSES)} (the paper\'s '
                     f"noise-level process 'wavegrad', or flow matching 'flow'), got {name!r}")


def from_config(config):
  """The `base.Process` of a full config (config.process, config.diffusion, config.audio).

  Raises:
    ValueError: an unknown process or an invalid option, with the field and the valid values.
  """
  name = process_name(config)
  check_name(name)
  return PROCESSES[name].from_config(config)


def recorded_fields(config):
  """What a run records of its process, with the defaults of an older run filled in (a dict).

  Compared on resume, fine-tuning and inference: a checkpoint of one process is never trained on
  or sampled by another.
  """
  name = process_name(config)
  check_name(name)
  return {'name': name, **PROCESSES[name].recorded_options(config)}


def process_class(config):
  """The registered class of the process a config names (its classmethods need no build)."""
  name = process_name(config)
  check_name(name)
  return PROCESSES[name]


def parse_grid(config, spec):
  """The sampler grid of `spec` for the config's process: betas [N] or times [N + 1], float64."""
  return process_class(config).parse_grid(spec, config)


def network_evaluations(config, grid):
  """Network calls of one sample over `grid` under config.sampling (0 for Griffin-Lim alone)."""
  return process_class(config).network_evaluations(grid, config)


def check_sampling(config):
  """Raises ValueError (one line) for sampling settings the config's process cannot run."""
  process_class(config).check_sampling(config)


def sampler_from_config(model, config, multi=False):
  """The jitted sampler of a Flax model under its config's process and config.sampling.

  sampler(params, grid, mel [B, F, M], rng, gla_mask=None, target_magnitude=None) -> [B, T]
  ([K, B, T] with multi=True and grids [K, ...]). 'wavegrad' keeps `sampling.sampler_from_config`
  (which warns once per schedule that does not start from noise).
  """
  from wavegrad_jax import sampling  # pylint: disable=g-import-not-at-top
  if process_name(config) == 'wavegrad':
    if multi:
      return sampling.multi_schedule_sampler_from_config(model, config)
    return sampling.sampler_from_config(model, config)
  return from_config(config).make_sampler(sampling.model_eps_fn(model), config, multi=multi)
