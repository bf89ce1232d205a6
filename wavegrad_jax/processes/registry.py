"""The process registry: `config.process.name` -> the `base.Process` class that builds it.

A new process is one module defining a `base.Process` subclass plus one entry in `PROCESSES`.
"""
from wavegrad_jax.processes import flow
from wavegrad_jax.processes import wavegrad

DEFAULT_PROCESS = 'wavegrad'

# name -> the class whose `from_config(config)` builds it.
PROCESSES = {
    'wavegrad': wavegrad.WaveGradProcess,
    'flow': flow.FlowProcess,
}


def check_name(name):
  """Raises ValueError naming the choices unless `name` is a registered process."""
  if name not in PROCESSES:
    raise ValueError(f'config.process.name must be one of {sorted(PROCESSES)} (the paper\'s '
                     f"noise-level process 'wavegrad', or flow matching 'flow'), got {name!r}")


def process_class(name):
  """The registered class of process `name` (its classmethods need no build); ValueError if
  unknown."""
  check_name(name)
  return PROCESSES[name]


def recorded_fields(name, section):
  """What a run records of process `name` with options `section` (config.process.<name> as a
  plain dict, {} when absent), the defaults of an older run filled in: a dict.

  Compared on resume, fine-tuning and inference: a checkpoint of one process is never trained on
  or sampled by another.
  """
  return {'name': name, **process_class(name).recorded_options(section)}
