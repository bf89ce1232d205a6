"""What synthesis needs from a run's workdir before restoring it: the step and the run settings.

A synthesis run records what its wavs depend on besides their inputs (`run_settings`: checkpoint,
step, EMA, schedule, seed, sampler, chunking, wav subtype, mel convention) in the output folder,
and compares that record before anything is restored; `expected_step` reads the step that will be
restored from the checkpoint folders' names (restoring may still fall back to another one).
"""
import os

from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import checkpoints


def expected_step(workdir, config, step_flag):
  """The step `step_flag` (--step: '', 'best' or a number) will restore, from folder names.

  Args:
    workdir: the run's folder.
    config: its config (checkpoint.directory / best_directory, when set).
    step_flag: the --step value.
  Returns:
    the step (int), or None when the checkpoint folder holds none.
  """
  step = checkpoints.parse_step(step_flag)
  if isinstance(step, int):
    return step
  section = config.get('checkpoint', None)
  key = 'best_directory' if step == 'best' else 'directory'
  name = section.get(key) if section is not None else None
  directory = os.path.join(workdir, name or ('checkpoints_best' if step == 'best' else
                                             'checkpoints'))
  steps = [int(n) for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
  return max(steps) if steps else None


def run_settings(workdir, config, betas, step, declared):
  """What the wavs depend on besides their inputs: recorded in the output folder.

  Args:
    workdir: the run's folder (recorded as an absolute path).
    config: the checkpoint's config (sampling, eval's ema, seed, chunking and wav subtype).
    betas: [N] inference schedule.
    step: the checkpoint step.
    declared: the `audio` section the .npy mels were made with, or None (the checkpoint's).
  Returns:
    JSON-able dict (`folder.plan_synthesis`'s settings).
  """
  s = config.sampling.to_dict()
  s.pop('named_schedules', None)
  s.pop('schedule', None)
  return {'checkpoint': os.path.abspath(workdir), 'step': step,
          'ema': bool(config.eval.ema), 'betas': [float(b) for b in betas],
          'seed': int(config.eval.seed), 'sampling': s,
          'chunking': {'chunk_frames': int(config.eval.chunk_frames),
                       'overlap_frames': int(config.eval.overlap_frames)},
          'wav_subtype': str(config.eval.wav_subtype),
          'mel_convention': ('checkpoint' if declared is None else mel_conventions.describe(
              mel_conventions.Frontend.from_config(declared)))}
