"""Vocoding mels of any length to waveforms with a trained run: the synthesizer's entry point.

`synthesize_request` does what `python -m experiments.synthesize` asks (a `SynthesisRequest`):
inputs, outputs and mel conventions are checked before the checkpoint is restored, and nothing
is created when the run cannot start; then the folder is planned, resumed and vocoded. Its parts,
re-exported here for the callers that import them from this module:

  `chunking`   chunked vocoding of long inputs with overlap, batched across files; GLA targets.
  `mel_input`  checking and converting input mels (`check_mel`, `load_mel`, `load_input`).
  `inputs`     collecting the inputs of a file or folder; checking the output folder.
  `folder`     synthesizing a folder with a plan, resume and atomic writes (`synthesize_files`).
  `restore`    what synthesis needs from a workdir before restoring it (step, run settings).
  `declared`   the audio section the --mel_* flags declare the .npy mels were made with.

Mel files (.npy) from any TTS model must hold float [frames, n_mels] natural-log mels made with the
checkpoint's frontend (see `mel_input`); the output has exactly frames * hop_length samples.
"""
import dataclasses
import sys
from typing import Callable, Optional
import warnings

from absl import logging
import jax

from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.inference.chunking import (
    ChunkPlan, chunk_mels, chunked_vocoder_from_config, make_chunked_vocoder,
    make_target_magnitude_fn, needs_target_magnitude, stitch_chunks, target_magnitude)
from wavegrad_jax.inference.declared import declared_audio
from wavegrad_jax.inference.folder import (
    SETTINGS_FILE, Job, SynthesisPlan, plan_synthesis, read_settings, synthesize_files,
    write_settings, write_wav)
from wavegrad_jax.inference.inputs import SynthesisOutputError, check_output_dir, collect_inputs
from wavegrad_jax.inference.mel_input import (
    AUDIO_EXTENSIONS, MEL_EXTENSIONS, SynthesisInputError, check_frame_rate, check_mel,
    conversion_notes, is_mel_file, load_input, load_mel, log_mel_bounds, make_log_mel_fn,
    mel_from_audio_file, other_convention_error)
from wavegrad_jax.inference.restore import expected_step, run_settings

__all__ = [
    'AUDIO_EXTENSIONS', 'ChunkPlan', 'Job', 'MEL_EXTENSIONS', 'SETTINGS_FILE',
    'SynthesisInputError', 'SynthesisOutputError', 'SynthesisPlan', 'SynthesisRequest',
    'check_conventions', 'check_frame_rate', 'check_mel', 'check_output_dir', 'chunk_mels',
    'chunked_vocoder_from_config', 'collect_inputs', 'conversion_notes', 'declared_audio',
    'expected_step', 'is_mel_file', 'load_input', 'load_mel', 'log_mel_bounds',
    'make_chunked_vocoder', 'make_log_mel_fn', 'make_target_magnitude_fn', 'mel_from_audio_file',
    'needs_target_magnitude', 'other_convention_error', 'plan_synthesis', 'read_settings',
    'run_settings', 'stitch_chunks', 'synthesize_files', 'synthesize_request', 'target_magnitude',
    'write_settings', 'write_wav']

# Mels whose convention is checked before the checkpoint is restored; the others as they are read.
_PRECHECKED_MELS = 16


def check_conventions(plan, audio_cfg, mel_hop, mel_rate):
  """Raises SynthesisInputError for the first of the first .npy mels to vocode that looks like
  another convention than the checkpoint's (its likely convention and the flags, in one line).

  A mel that fails another check is left to the run, which reports it with the other bad inputs.
  """
  mels = [job.src for job in plan.todo if is_mel_file(job.src)][:_PRECHECKED_MELS]
  for path in mels:
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore', mel_conventions.MelConventionWarning)
        mel = load_mel(path, audio_cfg, mel_hop, mel_rate)
    except SynthesisInputError:
      continue
    error = other_convention_error(mel, audio_cfg, path)
    if error is not None:
      raise error


@dataclasses.dataclass(frozen=True)
class SynthesisRequest:
  """What a synthesis run is asked to do (the launcher's flags, same names).

  Attributes:
    workdir: the run's folder.
    input: a wav / .npy file, or a folder of them.
    output_dir: where the wavs go.
    schedule: inference schedule (a name, a spec or a .json file); None: config.sampling.schedule.
    step: the --step to restore ('' the latest, 'best' or a number).
    mel_convention: 'checkpoint', a preset name or a config file (.py) the .npy mels were made with.
    mel_stats: the mean-variance statistics file of normalised mels, or None.
    mel_hop: hop (samples) the .npy mels were made with, or None.
    mel_sample_rate: their sample rate (Hz), or None.
    seed: noise seed, or None for config.eval.seed.
    ema: use the EMA weights, or None for config.eval.ema.
    fail_fast: stop at the first bad input.
    mels_only: vocode only the .npy mels of `input`.
    allow_mel_mismatch: vocode mels that look like another convention as they are.
    overwrite: vocode every input again.
  """
  workdir: str
  input: str
  output_dir: str
  schedule: Optional[str] = None
  step: str = ''
  mel_convention: str = 'checkpoint'
  mel_stats: Optional[str] = None
  mel_hop: Optional[int] = None
  mel_sample_rate: Optional[int] = None
  seed: Optional[int] = None
  ema: Optional[bool] = None
  fail_fast: bool = False
  mels_only: bool = False
  allow_mel_mismatch: bool = False
  overwrite: bool = False


def synthesize_request(request: SynthesisRequest, preview_config: Callable, load_checkpoint:
                       Callable, presets):
  """Checks everything, restores the checkpoint and vocodes request.input to request.output_dir.

  Args:
    request: the `SynthesisRequest`.
    preview_config: () -> the checkpoint's config with the overrides, restoring nothing.
    load_checkpoint: () -> (params, config, step), restoring the checkpoint.
    presets: the recipes --mel_convention may name (`declared_audio`).
  Returns:
    {input path: reason} of the inputs that failed.
  Raises:
    SynthesisInputError, SynthesisOutputError, errors.UserError: the run cannot start.
  """
  r = request
  output_dir = r.output_dir
  # Inputs, outputs and conventions first: nothing is restored, compiled or created before.
  inputs = collect_inputs(r.input, exclude=output_dir, mels_only=r.mels_only)
  check_output_dir(output_dir)
  # The checkpoint's config.json with --config / --config.<field> applied; nothing restored yet.
  config = preview_config()
  if r.seed is not None:
    config.eval.seed = r.seed
  if r.ema is not None:
    config.eval.ema = r.ema
  declared = declared_audio(config.audio, presets, r.mel_convention, mel_stats=r.mel_stats,
                            mel_hop=r.mel_hop, mel_sample_rate=r.mel_sample_rate)
  mel_hop, mel_rate = r.mel_hop, r.mel_sample_rate
  if any(is_mel_file(src) for src, _ in inputs):
    if declared is None:
      check_frame_rate(config.audio, mel_hop, mel_rate, '--mel_hop/--mel_sample_rate')
    else:
      for line in conversion_notes(declared, config.audio,
                                   f'--mel_convention={r.mel_convention} mels'):
        print(line)
      mel_hop = mel_rate = None  # they shaped the declared frontend, compared as a whole
  spec = r.schedule or config.sampling.schedule
  betas = processes.parse_grid_from_config(config, spec)
  settings = run_settings(r.workdir, config, betas, expected_step(r.workdir, config, r.step),
                          declared)
  plan = plan_synthesis(inputs, output_dir, config.audio, settings=settings,
                        resume=not r.overwrite)
  if plan.failed and r.fail_fast:
    raise SynthesisInputError(next(iter(plan.failed.values())))
  if plan.done:
    unreadable = f' ({len(plan.failed)} more cannot be read)' if plan.failed else ''
    print(f'{len(plan.done)} of {len(inputs)} wavs are already in {output_dir} (an earlier run '
          f'finished them); vocoding the other {len(plan.todo)}{unreadable}')
  if plan.unrecorded:
    print(f'{plan.unrecorded} wavs in {output_dir} have no {SETTINGS_FILE} record of '
          'how they were made; they are vocoded again')
  refuse_other = declared is None and not r.allow_mel_mismatch and bool(
      config.eval.check_mel_range)
  if refuse_other:
    check_conventions(plan, config.audio, mel_hop, mel_rate)
  if plan.todo:
    params, config, step = load_checkpoint()
    if r.seed is not None:
      config.eval.seed = r.seed
    if step != settings['step']:  # restoring fell back to another checkpoint
      settings = run_settings(r.workdir, config, betas, step, declared)
      plan = plan_synthesis(inputs, output_dir, config.audio, settings=settings,
                            resume=not r.overwrite)
    logging.info('step %s, schedule %s (%d steps), %d inputs -> %s', step, spec, len(betas),
                 len(plan.todo), output_dir)
    model = model_lib.build_model_from_config(config)
    vocode = chunked_vocoder_from_config(processes.sampler_from_config(model, config), config)
    result = synthesize_files(
        vocode, params, betas, config, inputs, output_dir,
        jax.random.PRNGKey(int(config.eval.seed)), mel_hop=mel_hop, mel_sample_rate=mel_rate,
        declared=declared, fail_fast=r.fail_fast, settings=settings, plan=plan,
        refuse_other_convention=refuse_other)
    if result['outputs']:
      print(f'wrote {len(result["outputs"])} wavs to {output_dir}: '
            f'{result["audio_seconds"]:.2f} s of audio in {result["synthesis_seconds"]:.2f} s '
            f'(RTF {result["rtf"]:.3g}, plus {result["compile_seconds"]:.1f} s compiling)')
    if result['mel_warnings']:
      print(f"{result['mel_warnings']} mels look like another convention than declared (the "
            'first warnings above say which)')
    failed = result['failed']
  else:
    failed = plan.failed
    if plan.done:
      print(f'nothing to vocode: {len(plan.done)} wavs already in {output_dir}')
    else:
      print(f'nothing vocoded: all {len(failed)} inputs failed')
  if failed:
    print(f'{len(failed)} of {len(inputs)} inputs failed and were not vocoded:', file=sys.stderr)
    for reason in failed.values():
      print(f'  {reason}', file=sys.stderr)
  return failed
