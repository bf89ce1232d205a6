"""Named samplers: `SAMPLER_PRESETS`, each a set of config.sampling fields, and their process.

The papers each preset follows are named at its entry. A preset is applied to the fields of a
config's sampling section, as a nested dict (`merged_fields`, read by
`SamplerOptions.from_config(config, preset=...)`) or as a config copy
(`options.preset_from_config`).
"""
import copy


# Named samplers: each sets config.sampling fields (a dict for a sub-section such as gla) on top of
# a config; what a preset leaves out keeps the config's value (noise_scale, GLA's STFT sizes).
# Every preset sets the fields that define it, so that a config's clipping or GLA never leaks into
# another preset's row of a comparison. A new preset is one entry.
_PLAIN = {'algorithm': 'diffusion', 'clip': 0.0, 'clip_x0': 0.0, 'gla': {'enabled': False},
          'solver': 'euler', 'final_projection': 0}
# The published algorithm's Griffin-Lim as textbook fast GLA (see the module docstring): 32
# iterations of momentum 0.1 in the authors' parameterisation, t = c_k - 0.1 c_{k-1}, which is
# Perraudin's c_k + a (c_k - c_{k-1}) up to scale with a = 0.1 / (1 - 0.1) = 1/9.
GLA_GRAD_GRIFFIN_LIM = {'magnitude': 'mel_pinv', 'iterations': 32, 'momentum': 0.1 / 0.9,
                        'variant': 'fast'}
# The same as the authors' code runs it: their loop, whose momentum is their m = 0.1 itself.
GLA_GRAD_AUTHORS_GRIFFIN_LIM = {'magnitude': 'mel_pinv', 'iterations': 32, 'momentum': 0.1,
                                'variant': 'authors'}
_GLA_GRAD_STEP = {'enabled': True, 'placement': 'mean', 'mean_peak': 0.95, 'steps': 'first:3'}
SAMPLER_PRESETS = {
    # The paper's sampler.
    'ancestral': {**_PLAIN, 'eta': 1.0},
    # DDIM-style deterministic steps on the same continuous noise levels.
    'deterministic': {**_PLAIN, 'eta': 0.0},
    # lmnt-com/wavegrad: y clamped to [-1, 1] after every step.
    'ancestral_clip_y': {**_PLAIN, 'eta': 1.0, 'clip': 1.0},
    # ivanvovk/WaveGrad: the clean estimate clamped to [-1, 1] inside every step.
    'ancestral_clip_x0': {**_PLAIN, 'eta': 1.0, 'clip_x0': 1.0},
    # GLA-Grad (Liu et al., ICASSP 2024) exactly as the authors' code runs it: their Griffin-Lim
    # loop (quirks included) on the step's mean on the 3 noisiest steps, rescaled to a 0.95 peak,
    # y clamped to [-1, 1] after every step.
    'gla_grad': {**_PLAIN, 'eta': 1.0, 'clip': 1.0,
                 'gla': {**_GLA_GRAD_STEP, **GLA_GRAD_AUTHORS_GRIFFIN_LIM}},
    # The same steps with the textbook fast Griffin-Lim the paper describes (what 'gla_grad' was
    # before the authors' loop was added).
    'gla_grad_fast': {**_PLAIN, 'eta': 1.0, 'clip': 1.0,
                      'gla': {**_GLA_GRAD_STEP, **GLA_GRAD_GRIFFIN_LIM}},
    # This project's variant: the same Griffin-Lim on the clean estimate, eps re-derived, no
    # rescaling or clamping.
    'gla_clean_estimate': {**_PLAIN, 'eta': 1.0,
                           'gla': {'enabled': True, 'placement': 'clean_estimate',
                                   'steps': 'first:3', **GLA_GRAD_GRIFFIN_LIM}},
    # No model: the same Griffin-Lim from the starting noise towards pinv(mel filterbank) exp(mel).
    'griffin_lim': {**_PLAIN, 'algorithm': 'griffin_lim', 'eta': 1.0,
                    'gla': {'enabled': False, **GLA_GRAD_GRIFFIN_LIM}},
    # No model, the stronger baseline: fast Griffin-Lim with Perraudin et al.'s momentum 0.99
    # (their recommendation) instead of GLA-Grad's 1/9, 32 iterations, same target. On 8 held-out
    # utterances PESQ 2.97 against 2.82, STOI 0.925 against 0.911
    # (experiments/results/few_step_refiner_cpu.json).
    'griffin_lim_perraudin': {**_PLAIN, 'algorithm': 'griffin_lim', 'eta': 1.0,
                              'gla': {'enabled': False, **GLA_GRAD_GRIFFIN_LIM,
                                      'momentum': 0.99}},
    # Process 'flow' (wavegrad_jax/processes/flow.py): ODE solvers over a time grid.
    'euler': {**_PLAIN, 'eta': 1.0, 'solver': 'euler'},
    'midpoint': {**_PLAIN, 'eta': 1.0, 'solver': 'midpoint'},
    'heun': {**_PLAIN, 'eta': 1.0, 'solver': 'heun'},
    # Euler, then 4 fast Griffin-Lim projections of the sample onto the mel's pseudo-inverse
    # magnitude (GLA-Grad's correction applied once at the end): the shipped model's sampler.
    'euler_gl': {**_PLAIN, 'eta': 1.0, 'solver': 'euler', 'final_projection': 4,
                 'final_projection_momentum': 0.99},
}

# The process each preset samples ('any' for the model-free baseline); every other preset is the
# paper's process's. A preset of the other process is refused (`check_preset`).
PRESET_PROCESS = {'griffin_lim': 'any', 'griffin_lim_perraudin': 'any', 'euler': 'flow', 'midpoint': 'flow', 'heun': 'flow',
                  'euler_gl': 'flow'}


def preset_process(name):
  """The process a sampler preset is for: 'wavegrad', 'flow' or 'any'."""
  return PRESET_PROCESS.get(name, 'wavegrad')


def presets_for(process_name):
  """The preset names that sample a process, in `SAMPLER_PRESETS` order."""
  return [n for n in SAMPLER_PRESETS if preset_process(n) in (process_name, 'any')]


def check_preset(name, process):
  """Raises ValueError unless `name` is a preset that samples `process` ('wavegrad' or 'flow').

  The message lists the presets (all of them for an unknown name, the process's for another
  process's preset).
  """
  if name not in SAMPLER_PRESETS:
    raise ValueError(f'unknown sampler preset {name!r}: choose one of {list(SAMPLER_PRESETS)} '
                     '(sampling.SAMPLER_PRESETS), or add an entry there')
  if preset_process(name) not in (process, 'any'):
    raise ValueError(f'sampler preset {name!r} samples process {preset_process(name)!r}, but this '
                     f'run was trained with process {process!r}: choose one of '
                     f'{presets_for(process)}')


def set_fields(fields, changes, path='sampling'):
  """Sets `changes` ({field: value}, a nested dict for a sub-section) in `fields`, in place.

  Args:
    fields: a mutable mapping of a sampling section's values (a dict, or an unlocked section).
    changes: e.g. a `SAMPLER_PRESETS` entry.
    path: the section's name, for the message.
  Raises:
    ValueError: a field `fields` does not have (a preset must only set existing fields).
  """
  for key, value in changes.items():
    if key not in fields:
      raise ValueError(f'the sampler preset sets {path}.{key}, which the config does not have')
    if isinstance(value, dict):
      set_fields(fields[key], value, f'{path}.{key}')
    else:
      fields[key] = value


def merged_fields(fields, name, process):
  """A copy of `fields` (a sampling section's values as a nested dict) under preset `name`.

  Raises:
    ValueError: see `check_preset` and `set_fields`.
  """
  check_preset(name, process)
  out = copy.deepcopy(fields)
  set_fields(out, SAMPLER_PRESETS[name])
  return out
