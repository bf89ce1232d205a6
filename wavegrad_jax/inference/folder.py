"""Synthesizing a folder of any size: a plan first, then groups of files, resumable, atomic writes.

The inputs' headers are read and finished outputs found first (`plan_synthesis`, which creates
nothing); then files are read, vocoded and written a group at a time (`synthesize_files`). Every
wav is written under a hidden temporary name and renamed when complete, and the run's settings go
to <output_dir>/synthesis.json, so a rerun vocodes only what is missing, and refuses to mix in
wavs of other settings. A bad input is reported by path with its reason and the others are
vocoded (or, with fail_fast, it stops the run).
"""
import concurrent.futures
import dataclasses
import json
import os
from typing import Dict, List, Optional
import warnings

import jax
import numpy as np
import soundfile
import tqdm

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax import jsonable
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.inference.chunking import make_target_magnitude_fn, target_magnitude
from wavegrad_jax.inference.inputs import SynthesisOutputError
from wavegrad_jax.inference.mel_input import (SynthesisInputError, _check_layout,
                                              _check_npy_header, _frontend_summary, _load_input,
                                              _values_summary, is_mel_file, make_log_mel_fn,
                                              other_convention_error)

# Written in the output folder: the settings its wavs were vocoded with (see `plan_synthesis`).
SETTINGS_FILE = 'synthesis.json'
# Warnings about mels that look like another convention, shown per run before they are counted.
_SHOWN_WARNINGS = 3


@dataclasses.dataclass(frozen=True)
class Job:
  """One input to vocode.

  Attributes:
    src: the input file.
    out: the wav it is written to.
    frames: its mel frame count when the file's header tells it (.npy mels, audio at the
      checkpoint's rate), else None.
    index: its position in the input list (its vocoding group's noise key).
  """
  src: str
  out: str
  frames: Optional[int]
  index: int


@dataclasses.dataclass
class SynthesisPlan:
  """What a synthesis run does (`plan_synthesis`).

  Attributes:
    output_dir: the output folder.
    todo: the jobs to vocode, in input order.
    done: jobs whose wav an earlier run finished (kept, not redone).
    failed: {input path: reason} for inputs whose header cannot be read or contradicts the
      checkpoint.
    unrecorded: outputs that exist without a settings record; they are vocoded again.
  """
  output_dir: str
  todo: List[Job]
  done: List[Job]
  failed: Dict[str, str]
  unrecorded: int = 0


def _probe_frames(src, audio_cfg):
  """An input's mel frames from its header (None for audio that is resampled); cheap."""
  hop, rate = int(audio_cfg.hop_length), int(audio_cfg.sample_rate)
  if is_mel_file(src):
    _check_npy_header(src)
    try:
      array = np.load(src, mmap_mode='r', allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      raise SynthesisInputError(f'{src}: not a readable .npy array ({e})') from e
    shape, dtype = array.shape, array.dtype
    del array
    fail = lambda problem: SynthesisInputError(
        f'{src}: {problem}. The checkpoint expects a [frames, n_mels] '
        f'{_values_summary(audio_cfg)} mel with {_frontend_summary(audio_cfg)}.')
    return int(_check_layout(shape, dtype, int(audio_cfg.n_mels), fail)[0])
  try:
    info = soundfile.info(src)
  except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
    raise SynthesisInputError(f'{src}: not a readable audio file, or corrupt ({e})') from e
  if info.frames <= 0:
    raise SynthesisInputError(f'{src}: file is empty (0 samples)')
  if info.samplerate != rate:
    return None
  if info.frames < hop:
    raise SynthesisInputError(f'{src}: {info.frames} samples is shorter than one hop ({hop})')
  return info.frames // hop


def _finished(job, audio_cfg):
  """Whether `job.out` is a complete wav of this job, newer than its input."""
  try:
    if os.path.getmtime(job.out) < os.path.getmtime(job.src):
      return False
    info = soundfile.info(job.out)
    if audio_lib._riff_data_shortfall(job.out):  # pylint: disable=protected-access
      return False
  except (RuntimeError, OSError):
    return False
  if info.samplerate != int(audio_cfg.sample_rate) or info.frames <= 0:
    return False
  return job.frames is None or info.frames == job.frames * int(audio_cfg.hop_length)


def read_settings(output_dir):
  """The settings recorded in `output_dir`'s synthesis.json, or None."""
  try:
    with open(os.path.join(output_dir, SETTINGS_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def write_settings(output_dir, settings):
  """Records the settings of a run in `output_dir`/synthesis.json (atomically)."""
  path = os.path.join(output_dir, SETTINGS_FILE)
  tmp = f'{path}.partial'
  with open(tmp, 'w') as f:
    json.dump(jsonable.finite(settings), f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def plan_synthesis(inputs, output_dir, audio_cfg, *, settings=None, resume=True):
  """Decides what a run vocodes: reads every input's header and finds finished outputs.

  Creates nothing, so a launcher calls it before restoring or compiling anything. An output
  counts as finished (and is not redone) when it is a complete wav at the checkpoint's rate, of
  the length its input gives (when known without decoding), newer than its input, and, with
  `settings`, recorded with the same settings. Wavs are only ever renamed into place once
  complete, so a run killed mid-write leaves no partial wav under an output name.

  Args:
    inputs: [(input path, output name)] from `collect_inputs`.
    output_dir: the output folder.
    audio_cfg: the checkpoint's `audio` section.
    settings: JSON-able settings of this run (checkpoint, step, schedule, seed, sampler, mel
      convention), compared with the folder's record; None to skip the comparison.
    resume: False vocodes everything again.
  Returns:
    `SynthesisPlan`.
  Raises:
    SynthesisOutputError: outputs of this run exist but were vocoded with other settings.
  """
  jobs, failed = [], {}
  for index, (src, name) in enumerate(inputs):
    out = os.path.join(output_dir, name)
    try:
      if os.path.isdir(out):
        raise SynthesisOutputError(f'{src}: its output {out} is a folder; move it away')
      frames = _probe_frames(src, audio_cfg)
    except SynthesisInputError as e:
      failed[src] = str(e)
      continue
    jobs.append(Job(src, out, frames, index))
  existing = [j for j in jobs if os.path.exists(j.out)]
  unrecorded = 0
  if not resume or not existing:
    done = []
  else:
    recorded = read_settings(output_dir) if settings is not None else None
    if settings is not None and recorded is None:
      done, unrecorded = [], len(existing)
    else:
      differ = [] if settings is None else jsonable.differences(
          recorded, jsonable.finite(settings), old_name=f'{output_dir}/{SETTINGS_FILE}',
          new_name='this run')
      if differ:
        raise SynthesisOutputError(
            f'{output_dir} already holds {len(existing)} of these wavs, vocoded with other '
            f"settings ({'; '.join(differ[:6])}). Use another --output_dir, or --overwrite to "
            'vocode them all again')
      done = [j for j in existing if _finished(j, audio_cfg)]
  finished = {j.index for j in done}
  return SynthesisPlan(output_dir, [j for j in jobs if j.index not in finished], done, failed,
                       unrecorded)


def _write_atomic(path, wave, sample_rate, subtype):
  """`write_wav` to a hidden temporary name beside `path`, renamed into place when complete."""
  tmp = os.path.join(os.path.dirname(path), f'.{os.path.basename(path)}.partial')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  wave = np.nan_to_num(np.asarray(wave, np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
  soundfile.write(tmp, np.clip(wave, -1.0, 1.0), int(sample_rate), subtype=subtype, format='WAV')
  os.replace(tmp, path)


def write_wav(path, wave, sample_rate, subtype='PCM_16'):
  """Writes a waveform, clipped to [-1, 1] (NaN as 0), creating folders as needed.

  Args:
    path: output file (.wav).
    wave: [T] float waveform.
    sample_rate: in Hz.
    subtype: soundfile subtype, e.g. 'PCM_16' or 'FLOAT'.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  wave = np.nan_to_num(np.asarray(wave, np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
  soundfile.write(path, np.clip(wave, -1.0, 1.0), int(sample_rate), subtype=subtype)


def synthesize_files(vocode, params, betas, config, inputs, output_dir, rng, *, mel_hop=None,
                     mel_sample_rate=None, declared=None, progress=True, fail_fast=False,
                     resume=True, settings=None, plan=None, refuse_other_convention=False):
  """Vocodes files to wavs: audio files by copy synthesis, .npy mels as they are.

  Files are read, vocoded and written config.eval.files_per_group at a time (the next group is
  read while one is vocoded), their chunks batched together. Each wav is written under a hidden
  temporary name and renamed into place once complete. Outputs an earlier run finished are kept
  (`plan_synthesis`), so a rerun continues where a killed one stopped. An input that cannot be
  read or contradicts the checkpoint is reported by path with its reason and the others are still
  vocoded; with `fail_fast` the first one raises instead. With GLA magnitude 'given'
  (`needs_target_magnitude`), audio files also give the sampler the |STFT| of their own audio, and
  .npy mels, which have none, are refused.

  Args:
    vocode: from `make_chunked_vocoder` / `chunked_vocoder_from_config`.
    params: model parameters.
    betas: [N] inference schedule.
    config: the checkpoint's config (uses `audio`, `eval` and `sampling.gla`).
    inputs: list of (input path, output name) from `collect_inputs`.
    output_dir: folder the output names are relative to (created when needed).
    rng: PRNG key; the group whose first input is input i uses fold_in(rng, i).
    mel_hop, mel_sample_rate: the .npy mels' hop (samples) and rate (Hz), checked if given.
    declared: the `audio` section the .npy mels were made with, when not the checkpoint's: they
      are converted (`check_mel`).
    progress: show a progress bar over files.
    fail_fast: raise at the first bad input instead of reporting it and going on.
    resume: keep finished outputs of an earlier run (False: vocode everything again).
    settings: this run's settings, compared with and then recorded in output_dir/synthesis.json.
    plan: a `plan_synthesis` result for these inputs (made here when None).
    refuse_other_convention: a .npy mel given as the checkpoint's convention (no `declared`)
      that looks like another is a bad input (`other_convention_error`), not a warning.
  Returns:
    dict: 'outputs' (wavs written by this call), 'frames' (theirs), 'skipped' (wavs an earlier
    run finished), 'failed' ({input path: reason}), 'mel_warnings' (mels that look like another
    convention), 'synthesis_seconds', 'compile_seconds', 'audio_seconds' (written), 'rtf'.
  Raises:
    SynthesisInputError: with `fail_fast`, the first bad input; a .npy mel with GLA magnitude
      'given'.
    SynthesisOutputError: outputs exist with other settings (`plan_synthesis`).
    ValueError: GLA magnitude 'given' with a GLA hop other than the audio hop.
  """
  audio_cfg, e = config.audio, config.eval
  if plan is None:
    plan = plan_synthesis(inputs, output_dir, audio_cfg, settings=settings, resume=resume)
  failed = dict(plan.failed)
  if fail_fast and failed:
    raise SynthesisInputError(next(iter(failed.values())))
  target_fn = make_target_magnitude_fn(config)
  if target_fn is not None:
    mel_inputs = [job.src for job in plan.todo if is_mel_file(job.src)]
    if mel_inputs:
      more = f' (and {len(mel_inputs) - 1} more .npy files)' if len(mel_inputs) > 1 else ''
      raise SynthesisInputError(
          f"{mel_inputs[0]}{more}: config.sampling.gla.magnitude='given' pulls the samples "
          'towards the true |STFT| of the clean audio, and a mel input has no true magnitude '
          '(only audio files, vocoded by copy synthesis, have one). Set '
          "config.sampling.gla.magnitude='mel_pinv' (--config.sampling.gla.magnitude=mel_pinv) "
          'to estimate it from the mel, or give the audio file instead')
  os.makedirs(output_dir, exist_ok=True)
  if settings is not None:
    write_settings(output_dir, settings)
  log_mel_fn = make_log_mel_fn(audio_cfg)
  check_range = bool(e.check_mel_range)
  group = max(1, int(e.files_per_group))
  groups = [plan.todo[i:i + group] for i in range(0, len(plan.todo), group)]
  mel_warnings = []

  def load(jobs):
    """[(job, mel, target or None)] of the readable jobs; the others go to `failed`."""
    loaded = []
    for job in jobs:
      try:
        with warnings.catch_warnings(record=True) as caught:
          warnings.simplefilter('always', mel_conventions.MelConventionWarning)
          mel, wave = _load_input(job.src, audio_cfg, mel_hop, mel_sample_rate, check_range,
                                  log_mel_fn, declared)
        other = [w for w in caught if issubclass(w.category, mel_conventions.MelConventionWarning)]
        if refuse_other_convention and declared is None and other and is_mel_file(job.src):
          raise other_convention_error(mel, audio_cfg, job.src) or SynthesisInputError(
              str(other[0].message))
        mel_warnings.extend(str(w.message) for w in caught)
        target = None if target_fn is None else target_magnitude(target_fn, wave, mel.shape[0])
      except SynthesisInputError as err:
        if fail_fast:
          raise
        failed[job.src] = str(err)
        continue
      loaded.append((job, mel, target))
    return loaded

  outputs, frames = [], []
  synthesis_seconds = compile_seconds = 0.0
  shown = 0
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='synthesize.load') as pool, \
      tqdm.tqdm(total=len(plan.todo), desc='synthesizing', unit='file',
                disable=not progress) as bar:
    pending = pool.submit(load, groups[0]) if groups else None
    for g in range(len(groups)):
      loaded = pending.result()
      pending = pool.submit(load, groups[g + 1]) if g + 1 < len(groups) else None
      for text in mel_warnings[shown:_SHOWN_WARNINGS]:
        warnings.warn(text, mel_conventions.MelConventionWarning, stacklevel=2)
      shown = max(shown, min(len(mel_warnings), _SHOWN_WARNINGS))
      if loaded:
        # Only passed when needed, so a vocode without the keyword keeps working.
        kwargs = {} if target_fn is None else dict(target_magnitudes=[t for _, _, t in loaded])
        waves, stats = vocode(params, betas, [mel for _, mel, _ in loaded],
                              jax.random.fold_in(rng, groups[g][0].index), progress=progress,
                              **kwargs)
        synthesis_seconds += stats['synthesis_seconds']
        compile_seconds += stats['compile_seconds']
        for (job, mel, _), wave in zip(loaded, waves):
          _write_atomic(job.out, wave, audio_cfg.sample_rate, e.wav_subtype)
          outputs.append(job.out)
          frames.append(int(mel.shape[0]))
      bar.update(len(groups[g]))
      if failed:
        bar.set_postfix(failed=len(failed))
  samples = sum(frames) * int(audio_cfg.hop_length)
  audio_seconds = samples / float(audio_cfg.sample_rate)
  return dict(outputs=outputs, frames=frames, skipped=[j.out for j in plan.done], failed=failed,
              mel_warnings=len(mel_warnings), synthesis_seconds=synthesis_seconds,
              compile_seconds=compile_seconds, audio_seconds=audio_seconds,
              rtf=synthesis_seconds / audio_seconds if audio_seconds else float('inf'))
