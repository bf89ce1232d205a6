"""Vocoding mels of any length to waveforms: chunked batching, input checks, wav / .npy files.

Mel files (.npy) from any TTS model must hold float [frames, n_mels] natural-log mels made with the
checkpoint's frontend: log(max(mel, audio.log_floor)) of a magnitude (power = audio.power) Slaney
mel filterbank over a Hann STFT with the checkpoint's sample_rate, n_fft, win_length, hop_length,
fmin and fmax (exactly `audio.log_mel_spectrogram`). A [1, frames, n_mels] array is accepted too.
The output has exactly frames * hop_length samples.

With GLA-Grad's true magnitude (config.sampling.gla.magnitude='given'), each input also needs the
|STFT| of its clean audio: copy synthesis (audio files) and evaluation take it from the reference
audio; a .npy mel has no audio behind it and is refused (use magnitude='mel_pinv' there).

Mels of another convention (`check_mel`'s `declared`, the launcher's --mel_convention) are
converted to the checkpoint's where the difference is invertible (`mel_conventions.adapt`), and
refused, naming the fields, where it is not (`conversion_notes` checks that once, up front).

Long inputs are cut into equal chunks of `chunk_frames` mel frames that overlap by
`overlap_frames`, the chunks of many files are batched together, and the overlaps are cross-faded
back; so the sampler compiles once per (schedule length, [batch, chunk_frames, n_mels]) shape and
never per file.

Folders of any size (`synthesize_files`): the inputs' headers are read and finished outputs found
first (`plan_synthesis`, which creates nothing); then files are read, vocoded and written a group
at a time. Every wav is written under a hidden temporary name and renamed when complete, and the
run's settings go to <output_dir>/synthesis.json, so a rerun vocodes only what is missing, and
refuses to mix in wavs of other settings. A bad input is reported by path with its reason and the
others are vocoded (or, with fail_fast, it stops the run).
"""
import concurrent.futures
import dataclasses
import json
import math
import os
import tempfile
import time
from typing import Dict, List, Optional
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import soundfile
import tqdm

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import sampling

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.mp3')
MEL_EXTENSIONS = ('.npy',)


class SynthesisInputError(ValueError):
  """An input file that is missing or contradicts the checkpoint's frontend; says how to fix it."""


# ----------------------------------------------------------------------------------- chunking


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
  """Where each chunk of a batch of mels came from.

  Attributes:
    frames: per input, its number of mel frames F_i.
    first_chunk: per input, the index of its first chunk in the chunk array.
    num_chunks: per input, how many chunks it was cut into.
    chunk_frames: frames per chunk.
    overlap_frames: frames shared by neighbouring chunks of one input.
  """
  frames: tuple
  first_chunk: tuple
  num_chunks: tuple
  chunk_frames: int
  overlap_frames: int


def _check_chunking(chunk_frames, overlap_frames):
  if chunk_frames < 1 or not 0 <= overlap_frames < chunk_frames:
    raise ValueError(f'need chunk_frames >= 1 and 0 <= overlap_frames < chunk_frames, got '
                     f'{chunk_frames} and {overlap_frames}')


def chunk_mels(mels, chunk_frames, overlap_frames, pad_value):
  """Cuts mels of any lengths into equal overlapping chunks.

  Args:
    mels: sequence of [F_i, n_mels] arrays, F_i >= 1.
    chunk_frames: frames per chunk.
    overlap_frames: frames shared by consecutive chunks of one input (< chunk_frames).
    pad_value: log-mel value for frames past an input's end (silence: log(log_floor)).
  Returns:
    (chunks [C, chunk_frames, n_mels] float32, ChunkPlan). Input i with F_i frames gives
    max(1, ceil((F_i - overlap) / (chunk_frames - overlap))) chunks.
  """
  _check_chunking(chunk_frames, overlap_frames)
  stride = chunk_frames - overlap_frames
  chunks, frames, first, counts = [], [], [], []
  for mel in mels:
    mel = np.asarray(mel, np.float32)
    f = mel.shape[0]
    if f < 1:
      raise ValueError('cannot vocode a mel with 0 frames')
    n = max(1, math.ceil((f - overlap_frames) / stride))
    padded = np.full(((n - 1) * stride + chunk_frames, mel.shape[1]), pad_value, np.float32)
    padded[:f] = mel
    first.append(len(chunks))
    counts.append(n)
    frames.append(f)
    chunks.extend(padded[c * stride:c * stride + chunk_frames] for c in range(n))
  plan = ChunkPlan(tuple(frames), tuple(first), tuple(counts), chunk_frames, overlap_frames)
  return np.stack(chunks), plan


def stitch_chunks(chunk_audio, plan, hop_length):
  """Inverse of `chunk_mels` on the waveforms: linear cross-fades over the overlaps, then crops.

  Args:
    chunk_audio: [C, chunk_frames * hop_length] waveforms of the chunks.
    plan: the ChunkPlan `chunk_mels` returned.
    hop_length: samples per mel frame.
  Returns:
    list of [F_i * hop_length] float32 waveforms, one per input.
  """
  chunk_audio = np.asarray(chunk_audio, np.float32)
  stride = (plan.chunk_frames - plan.overlap_frames) * hop_length
  overlap = plan.overlap_frames * hop_length
  # Fade-in weights over the overlap; the outgoing chunk gets 1 - w, so they sum to one.
  fade = (np.arange(overlap, dtype=np.float32) + 0.5) / max(overlap, 1)
  outputs = []
  for f, first, n in zip(plan.frames, plan.first_chunk, plan.num_chunks):
    out = np.zeros((n - 1) * stride + chunk_audio.shape[1], np.float32)
    for c in range(n):
      piece = chunk_audio[first + c].copy()
      if c > 0 and overlap:
        piece[:overlap] *= fade
      if c < n - 1 and overlap:
        piece[-overlap:] *= 1.0 - fade
      out[c * stride:c * stride + piece.size] += piece
    outputs.append(out[:f * hop_length])
  return outputs


def make_chunked_vocoder(sampler, *, hop_length, chunk_frames, overlap_frames, batch_size,
                         pad_value):
  """Wraps a sampler to vocode mels of any lengths in equal-shape batches of chunks.

  Args:
    sampler: sampler(params, betas [N], mel [B, chunk_frames, M], rng) -> [B, chunk_frames * hop]
      (`sampling.make_sampler` or `sampling.sampler_from_config`); with target magnitudes it must
      also take the keyword target_magnitude [B, chunk_frames, K].
    hop_length: samples per mel frame.
    chunk_frames: mel frames per chunk.
    overlap_frames: frames cross-faded between neighbouring chunks.
    batch_size: chunks per sampler call; fewer when the inputs have fewer chunks in all.
    pad_value: log-mel value for padding (silence).
  Returns:
    vocode(params, betas [N], mels (list of [F_i, M]), rng, progress=False, desc='',
    target_magnitudes=None) -> (list of [F_i * hop] float32 waveforms, stats dict with
    'compile_seconds', 'synthesis_seconds' (sampler time after compilation), 'num_chunks',
    'batch_size'). target_magnitudes, for GLA magnitude 'given', is a list of [F_i, K] |STFT| of
    each input's clean audio (`make_target_magnitude_fn`), one frame per mel frame; it is cut
    with the mels' chunk plan and padded with 0 (silence), and the sampler gets its chunks as
    target_magnitude. Batch b uses the key fold_in(rng, b). Compiled executables are kept per
    (N, batch shape, target shape).
  """
  _check_chunking(chunk_frames, overlap_frames)
  if not hasattr(sampler, 'lower'):
    sampler = jax.jit(sampler)
  compiled = {}

  def pad_batches(chunks, num_batches, batch, value):
    # Silent filler chunks keep every call at one shape (one compilation).
    filler = np.full((num_batches * batch - chunks.shape[0],) + chunks.shape[1:], value,
                     np.float32)
    return np.concatenate([chunks, filler])

  def vocode(params, betas, mels, rng, progress=False, desc='', target_magnitudes=None):
    chunks, plan = chunk_mels(mels, chunk_frames, overlap_frames, pad_value)
    num = chunks.shape[0]
    batch = min(batch_size, num)
    num_batches = -(-num // batch)
    chunks = pad_batches(chunks, num_batches, batch, pad_value)
    targets = None
    if target_magnitudes is not None:
      targets = pad_batches(_chunk_targets(target_magnitudes, mels, plan), num_batches, batch, 0.0)
    betas = jnp.asarray(betas, jnp.float32)
    key = (int(betas.shape[0]), chunks.shape[1:], batch,
           None if targets is None else targets.shape[1:])

    def args(b):
      mel = jnp.asarray(chunks[b * batch:(b + 1) * batch])
      # Without targets the sampler gets the four positional arguments it always got.
      kwargs = {} if targets is None else dict(
          target_magnitude=jnp.asarray(targets[b * batch:(b + 1) * batch]))
      return mel, kwargs

    compile_seconds = 0.0
    if key not in compiled:
      start = time.perf_counter()
      mel, kwargs = args(0)
      compiled[key] = sampler.lower(params, betas, mel, rng, **kwargs).compile()
      compile_seconds = time.perf_counter() - start
    run = compiled[key]
    out, synthesis_seconds = [], 0.0
    for b in tqdm.trange(num_batches, desc=desc or 'vocoding', unit='batch', leave=False,
                         disable=not progress):
      mel, kwargs = args(b)
      start = time.perf_counter()
      wave = jax.block_until_ready(run(params, betas, mel, jax.random.fold_in(rng, b), **kwargs))
      synthesis_seconds += time.perf_counter() - start
      out.append(np.asarray(wave))
    chunk_audio = np.concatenate(out)[:num]
    stats = dict(compile_seconds=compile_seconds, synthesis_seconds=synthesis_seconds,
                 num_chunks=num, batch_size=batch)
    return stitch_chunks(chunk_audio, plan, hop_length), stats

  return vocode


def _chunk_targets(target_magnitudes, mels, plan):
  """Cuts per-input [F_i, K] target magnitudes with the mels' ChunkPlan: [C, chunk_frames, K]."""
  if len(target_magnitudes) != len(mels):
    raise ValueError(f'got {len(target_magnitudes)} target magnitudes for {len(mels)} mels; give '
                     'one per mel')
  targets = [np.asarray(t, np.float32) for t in target_magnitudes]
  for i, (target, frames) in enumerate(zip(targets, plan.frames)):
    if target.ndim != 2 or target.shape[0] != frames or target.shape[1] != targets[0].shape[1]:
      raise ValueError(
          f'target magnitude {i} has shape {target.shape}, but its mel has {frames} frames: the '
          'chunks need one |STFT| frame per mel frame, all with one bin count ([F_i, n_fft // 2 '
          '+ 1], the GLA hop equal to the audio hop; see make_target_magnitude_fn)')
  # 0 past an input's end: the |STFT| of the silence its mel is padded with.
  # Same frame counts, so the same plan as the mels': chunk c of both covers the same frames.
  return chunk_mels(targets, plan.chunk_frames, plan.overlap_frames, 0.0)[0]


def chunked_vocoder_from_config(sampler, config):
  """`make_chunked_vocoder` with config.eval's chunking and config.audio's hop and log floor.

  Args:
    sampler: a jitted sampler(params, betas [N], mel [B, F, M], rng) -> [B, F * hop].
    config: full config (eval.chunk_frames, overlap_frames, batch_size in frames / chunks;
      audio.hop_length in samples; the audio convention's silence pads).
  Returns:
    The `vocode` function of `make_chunked_vocoder`.
  """
  e = config.eval
  return make_chunked_vocoder(
      sampler, hop_length=int(config.audio.hop_length), chunk_frames=int(e.chunk_frames),
      overlap_frames=int(e.overlap_frames), batch_size=int(e.batch_size),
      pad_value=mel_conventions.silence_value(config.audio))


def needs_target_magnitude(config):
  """Whether config.sampling runs GLA-Grad with the true magnitude (gla.magnitude='given').

  Args:
    config: a full config.
  Returns:
    True when GLA is enabled with magnitude 'given': every vocoded mel then needs the |STFT| of
    its clean audio (`make_target_magnitude_fn`).
  """
  g = config.sampling.gla
  return bool(g.enabled) and g.magnitude == 'given'


def make_target_magnitude_fn(config):
  """The reference |STFT| that GLA magnitude 'given' pulls the samples towards, as chunks need it.

  Args:
    config: a full config (audio; sampling.gla's STFT sizes, 0 / '' inheriting audio's).
  Returns:
    None unless `needs_target_magnitude(config)`; else a function [T] float audio ->
    [T // hop_length, gla n_fft // 2 + 1] float32 |STFT| with the GLA STFT, one frame per mel
    frame of the same audio (jitted: compiles once per length).
  Raises:
    ValueError: the GLA hop differs from the audio hop, so |STFT| frames cannot be chunked along
      with the mel frames.
  """
  if not needs_target_magnitude(config):
    return None
  gl = sampling.gla_options_from_config(config).griffin_lim
  hop = int(config.audio.hop_length)
  if gl.hop_length != hop:
    raise ValueError(
        f"GLA magnitude='given' in chunked synthesis needs one |STFT| frame per mel frame, but "
        f'config.sampling.gla.hop_length={gl.hop_length} differs from config.audio.hop_length='
        f'{hop}; set gla.hop_length to 0 (inherit) or {hop}')
  return jax.jit(lambda x: audio_lib.stft_magnitude(x, gl.n_fft, gl.hop_length, gl.win_length,
                                                    gl.window, gl.pad_mode, gl.framing))


def target_magnitude(target_fn, wave, frames):
  """`target_fn`'s |STFT| of one input's audio, cut to its `frames` mel frames: [frames, K]."""
  target = np.asarray(target_fn(jnp.asarray(wave, jnp.float32)), np.float32)
  if target.shape[0] < frames:
    raise ValueError(f'{wave.shape[0]} samples give {target.shape[0]} |STFT| frames, fewer than '
                     f'the {frames} mel frames')
  return target[:frames]


# ---------------------------------------------------------------------------------- mel checks


def log_mel_bounds(audio_cfg):
  """The range a mel of [-1, 1] audio can take under `audio_cfg` (`mel_conventions.value_bounds`).

  By default the lower bound is log(log_floor). The upper bound is reached by no real signal: an
  STFT bin is at most sum(window) in magnitude for |x| <= 1, and a mel band sums its filter weights
  over bins.

  Args:
    audio_cfg: the checkpoint's `audio` section.
  Returns:
    (low, high) in the convention's units (nats by default).
  """
  return mel_conventions.value_bounds(audio_cfg)


def _frontend_summary(audio_cfg):
  return (f'sample_rate={audio_cfg.sample_rate} Hz, hop_length={audio_cfg.hop_length}, '
          f'n_fft={audio_cfg.n_fft}, win_length={audio_cfg.win_length}, n_mels={audio_cfg.n_mels}, '
          f'fmin={audio_cfg.fmin}, fmax={audio_cfg.fmax}, power={audio_cfg.power}, '
          f'log_floor={audio_cfg.log_floor}')


def _values_summary(audio_cfg):
  fe = mel_conventions.frontend(audio_cfg)
  if fe.convention == 'wavegrad' and fe.log_scale == 'ln' and fe.normalize == 'none':
    return 'natural-log'
  return f'{mel_conventions.describe(fe)} ({mel_conventions.preset_call(fe)})'


def check_frame_rate(audio_cfg, mel_hop=None, mel_sample_rate=None, source='mel'):
  """Refuses mels made at another frame rate than the checkpoint's (hop in samples, rate in Hz).

  Args:
    audio_cfg: the checkpoint's `audio` section.
    mel_hop: the hop (samples) the mels were made with, if known.
    mel_sample_rate: their sample rate (Hz), if known.
    source: name used in the message.
  Raises:
    SynthesisInputError: saying both frame rates and how to fix it.
  """
  hop, rate = int(audio_cfg.hop_length), int(audio_cfg.sample_rate)
  if (mel_hop is None or int(mel_hop) == hop) and (
      mel_sample_rate is None or int(mel_sample_rate) == rate):
    return
  given_hop = int(mel_hop) if mel_hop is not None else hop
  given_rate = int(mel_sample_rate) if mel_sample_rate is not None else rate
  raise SynthesisInputError(
      f'{source}: frame rate mismatch: the mel was made with hop {given_hop} samples at '
      f'{given_rate} Hz ({given_rate / given_hop:.2f} frames/s, '
      f'{given_hop / given_rate * 1e3:.2f} ms per frame) but the checkpoint synthesizes {hop} '
      f'samples per frame at {rate} Hz ({rate / hop:.2f} frames/s). Recompute the mel (or '
      f'retrain the TTS model) with hop_length={hop} at {rate} Hz; resampling frames in time '
      'degrades the audio. The checkpoint expects a [frames, n_mels] '
      f'{_values_summary(audio_cfg)} mel with {_frontend_summary(audio_cfg)}.')


def conversion_notes(declared, audio_cfg, source='mel'):
  """What vocoding mels of frontend `declared` with a checkpoint of `audio_cfg` converts.

  Checks the frontends once, before any mel is read: the statistics file of a normalised
  convention is read too.

  Args:
    declared: the `audio` section (or `mel_conventions.Frontend`) the mels were made with.
    audio_cfg: the checkpoint's `audio` section.
    source: name of the mels in the messages, e.g. '--mel_convention=espnet mels'.
  Returns:
    list of message lines (`mel_conventions.adapt`'s), empty when the frontends agree.
  Raises:
    mel_conventions.MelConventionError: a difference no conversion undoes, listing the fields and
      naming the configs that would match.
  """
  empty = np.zeros((0, int(mel_conventions.frontend(declared).n_mels)), np.float32)
  return mel_conventions.adapt(empty, declared, audio_cfg, source)[1]


def _check_layout(shape, dtype, n_mels, fail):
  """Raises fail(...) unless (shape, dtype) is a float [frames, n_mels] or [1, frames, n_mels]."""
  if len(shape) == 3 and shape[0] == 1:
    shape = shape[1:]
  if len(shape) != 2:
    raise fail(f'expected a 2-D [frames, n_mels] array, got shape {tuple(shape)}')
  if not np.issubdtype(dtype, np.floating):
    raise fail(f'expected floating-point values, got dtype {dtype}')
  if shape[1] != n_mels:
    if shape[0] == n_mels:
      raise fail(f'shape {tuple(shape)} looks transposed: saved as [n_mels, frames] = '
                 f'[{shape[0]}, {shape[1]}]. Save it as [frames, n_mels]: np.save(path, mel.T)')
    raise fail(f'has {shape[1]} mel bands (last axis; shape {tuple(shape)}) but the checkpoint '
               f'has n_mels={n_mels}. Recompute the mel with n_mels={n_mels} and the frontend '
               "below, or use a checkpoint trained with your TTS model's frontend")
  if shape[0] < 1:
    raise fail('has 0 frames')
  return shape


def check_mel(mel, audio_cfg, source='mel', mel_hop=None, mel_sample_rate=None, check_range=True,
              declared=None):
  """Validates a mel from outside (e.g. a TTS model) against the checkpoint's frontend.

  Args:
    mel: [frames, n_mels] (or [1, frames, n_mels]) mel in the checkpoint's convention (natural-log
      by default), or in `declared`'s.
    audio_cfg: the checkpoint's `audio` section.
    source: name used in error messages (e.g. the file path).
    mel_hop: hop in samples the mel was made with, if known; must equal audio_cfg.hop_length.
    mel_sample_rate: sample rate in Hz the mel was made at, if known; must equal the checkpoint's.
    check_range: reject values outside the convention's range, or that look like log10, dB or
      linear mels where natural-log ones are expected; warn (`MelConventionWarning`) when they
      look like another convention's.
    declared: the `audio` section (or `Frontend`) the mel was made with, when not the checkpoint's:
      the mel is checked against it (`mel_conventions.resemblance_warning`), converted to the
      checkpoint's values (`mel_conventions.adapt`) and then checked as the checkpoint's.
  Returns:
    [frames, n_mels] float32 in the checkpoint's convention.
  Raises:
    SynthesisInputError: saying what differs and how to fix it.
  """
  n_mels = int(audio_cfg.n_mels)
  frontend = _frontend_summary(audio_cfg)

  def fail(problem):
    return SynthesisInputError(f'{source}: {problem}. The checkpoint expects a [frames, n_mels] '
                               f'{_values_summary(audio_cfg)} mel with {frontend}.')

  check_frame_rate(audio_cfg, mel_hop, mel_sample_rate, source)
  mel = np.asarray(mel)
  _check_layout(mel.shape, mel.dtype, n_mels, fail)
  if mel.ndim == 3:
    mel = mel[0]
  if not np.all(np.isfinite(mel)):
    raise fail(f'{int(np.count_nonzero(~np.isfinite(mel)))} values are NaN or infinite '
               '(log of 0 without a floor?); use log(max(mel, log_floor))')
  mel = mel.astype(np.float32)
  converted, warned = False, declared is not None
  if declared is not None:
    if check_range:
      _warn_if_other_convention(mel, mel_conventions.frontend(declared), source)
    try:
      mel, notes = mel_conventions.adapt(mel, declared, audio_cfg, source)
    except mel_conventions.MelConventionError as e:
      raise SynthesisInputError(str(e)) from e
    converted = bool(notes)
  if not check_range:
    return mel
  low, high = log_mel_bounds(audio_cfg)
  lo, hi = float(mel.min()), float(mel.max())
  tol = 1e-3
  fe = mel_conventions.frontend(audio_cfg)
  if converted:
    # Checked against the declared convention above; here only what the checkpoint can take.
    if lo < low - tol or hi > high + tol:
      raise fail(f'values range from {lo:.3g} to {hi:.3g} after conversion, outside '
                 f'[{low:.3g}, {high:.3g}], the range of {mel_conventions.describe(fe)} for '
                 '[-1, 1] audio: is the declared convention the one the mel was made with?')
    return mel
  if fe.log_scale != 'ln' or fe.normalize != 'none':
    if lo < low - tol or hi > high + tol:
      forms = mel_conventions.resembles(mel)
      looks = f'; they look like a {mel_conventions.FORMS[forms[0]]}' if forms else ''
      raise fail(f'values range from {lo:.3g} to {hi:.3g}, outside [{low:.3g}, {high:.3g}], the '
                 f'range of {mel_conventions.describe(fe)} for [-1, 1] audio{looks}')
    _warn_if_other_convention(mel, fe, source)
    return mel
  if lo < low - tol:
    db_hint = ' Values like these come from a dB mel (20*log10 or 10*log10)' if lo < -20 else ''
    raise fail(f'values range from {lo:.2f} to {hi:.2f}, below log(log_floor) = {low:.2f}, the '
               f'smallest natural-log mel the checkpoint saw.{db_hint}; convert: natural log = '
               f'dB / 20 * ln(10) for amplitude dB, then floor at {low:.2f}; or the mel used a '
               f'smaller floor: np.maximum(mel, {low:.4f})')
  if hi > high + tol:
    raise fail(f'values reach {hi:.2f}, above {high:.2f}, the largest natural-log mel any [-1, 1] '
               'waveform can produce with this frontend: looks like a dB mel (divide dB by '
               '20 / ln(10) = 8.686) or a power / unnormalized spectrum')
  if lo >= 0.0:
    raise fail(f'values range from {lo:.3g} to {hi:.3g} with none negative: looks like a linear '
               f'(not log) mel; apply np.log(np.maximum(mel, {audio_cfg.log_floor}))')
  log10_floor = low / math.log(10.0)
  at_log10_floor = float(np.mean(np.abs(mel - log10_floor) < 1e-4))
  if lo >= log10_floor - tol and at_log10_floor >= 0.01:
    raise fail(f'{at_log10_floor:.0%} of the values sit at {log10_floor:.3f} = '
               f'log10(log_floor): looks like a log10 mel; convert with mel * ln(10)')
  if not warned:
    _warn_if_other_convention(mel, fe, source)
  return mel


def _warn_if_other_convention(mel, fe, source):
  warning = mel_conventions.resemblance_warning(mel, fe, source)
  if warning:
    warnings.warn(warning, mel_conventions.MelConventionWarning, stacklevel=3)


# The --mel_convention that converts mels of each value form (mel_conventions.FORMS).
_FORM_FLAGS = {'ln': '--mel_convention=wavegrad', 'log10': '--mel_convention=espnet',
               'meanvar': '--mel_convention=espnet --mel_stats=<its stats.npy or .npz>',
               'unit': '--mel_convention=lmnt'}


def other_convention_error(mel, audio_cfg, source='mel'):
  """A SynthesisInputError for a mel that looks like another convention than the checkpoint's.

  What the launcher refuses by default (`mel_conventions.other_form`, the test behind
  `check_mel`'s warning), naming the likely convention and the flag that converts it.

  Args:
    mel: [frames, n_mels] values, given as the checkpoint's convention (no --mel_convention).
    audio_cfg: the checkpoint's `audio` section.
    source: name of the mel in the message (its path).
  Returns:
    the error (to raise), or None when the values fit the checkpoint's convention.
  """
  form = mel_conventions.other_form(mel, audio_cfg)
  if form is None:
    return None
  fe = mel_conventions.frontend(audio_cfg)
  flag = _FORM_FLAGS.get(form, '--mel_convention=<a config .py whose audio section made them>')
  s = mel_conventions.value_stats(mel)
  return SynthesisInputError(
      f"{source}: its values (from {s['lo']:.3g} to {s['hi']:.3g}, mean {s['mean']:.3g}) look "
      f"like a {mel_conventions.FORMS[form]}, not the checkpoint's "
      f'{mel_conventions.describe(fe)}: give {flag} to convert them, or pass '
      '--allow_mel_mismatch to vocode them as they are (muffled or noisy audio)')


def _check_npy_header(path):
  """Raises SynthesisInputError unless `path` starts like a .npy file (np.save's magic bytes)."""
  try:
    with open(path, 'rb') as f:
      magic = f.read(6)
  except OSError as e:
    raise SynthesisInputError(f'{path}: cannot read the file ({e.strerror or e})') from e
  if magic != b'\x93NUMPY':
    raise SynthesisInputError(f'{path}: not a .npy array (no NumPy header: empty, truncated or '
                              'another format); save mels with np.save(path, mel)')


def load_mel(path, audio_cfg, mel_hop=None, mel_sample_rate=None, check_range=True,
             declared=None):
  """Reads and validates a .npy mel ([frames, n_mels], natural log; see module docstring).

  Args:
    path: a .npy file.
    audio_cfg: the checkpoint's `audio` section.
    mel_hop, mel_sample_rate, check_range, declared: as `check_mel`.
  Returns:
    [frames, n_mels] float32.
  Raises:
    SynthesisInputError: missing or unreadable file, or a mel that contradicts the frontend.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise SynthesisInputError(f'{path}: no such file')
  _check_npy_header(path)
  try:
    mel = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise SynthesisInputError(f'{path}: not a readable .npy array ({e})') from e
  return check_mel(mel, audio_cfg, path, mel_hop, mel_sample_rate, check_range, declared)


def make_log_mel_fn(audio_cfg):
  """The checkpoint's jitted frontend: [T] audio -> [T // hop, n_mels] natural-log mel."""
  return jax.jit(lambda x: audio_lib.log_mel_spectrogram(x, audio_cfg))


def mel_from_audio_file(path, audio_cfg, log_mel_fn=None):
  """Copy synthesis input: loads audio at the checkpoint's rate and computes its log-mel.

  Args:
    path: any audio file `audio.load_audio` reads.
    audio_cfg: the checkpoint's `audio` section.
    log_mel_fn: optional jitted frontend from `make_log_mel_fn` (reused across files).
  Returns:
    (mel [F, n_mels] float32, audio [F * hop] float32) with F = T // hop.
  Raises:
    SynthesisInputError: missing, unreadable, or shorter than one hop.
  """
  try:
    wave = audio_lib.load_audio_for_config(path, audio_cfg)
  except audio_lib.AudioLoadError as e:
    raise SynthesisInputError(str(e)) from e
  hop = int(audio_cfg.hop_length)
  frames = wave.shape[0] // hop
  if frames < 1:
    raise SynthesisInputError(f'{path}: {wave.shape[0]} samples is shorter than one hop ({hop})')
  log_mel_fn = log_mel_fn or make_log_mel_fn(audio_cfg)
  mel = np.asarray(log_mel_fn(jnp.asarray(wave)), np.float32)
  return mel, wave[:frames * hop]


# ------------------------------------------------------------------------------------- files

# Written in the output folder: the settings its wavs were vocoded with (see `plan_synthesis`).
SETTINGS_FILE = 'synthesis.json'
# Warnings about mels that look like another convention, shown per run before they are counted.
_SHOWN_WARNINGS = 3


class SynthesisOutputError(SynthesisInputError, errors.OutputPathError):
  """The output folder cannot be written, or holds wavs vocoded with other settings."""


def _is_under(path, folder):
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def collect_inputs(path, exclude=None, mels_only=False):
  """The files to vocode under `path`: itself, or every audio / .npy file below a folder.

  Args:
    path: a file or a folder.
    exclude: the output folder, if any: audio files below it are outputs (of this or an earlier
      run), not inputs, and are left out.
    mels_only: take only the .npy mels (e.g. of a folder of mels beside their audio).
  Returns:
    sorted list of (input path, output name relative to the output folder, ending in .wav).
  Raises:
    SynthesisInputError: missing path, unsupported extension, empty folder, or two inputs that
      would write the same output (e.g. a.wav and a.npy).
  """
  path = os.fspath(path)
  supported = MEL_EXTENSIONS if mels_only else AUDIO_EXTENSIONS + MEL_EXTENSIONS
  if os.path.isfile(path):
    if not path.lower().endswith(supported):
      raise SynthesisInputError(f'{path}: unsupported extension; give one of {supported}')
    pairs = [(path, os.path.splitext(os.path.basename(path))[0] + '.wav')]
  elif os.path.isdir(path):
    pairs = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      for name in sorted(files):
        full = os.path.join(root, name)
        if not name.lower().endswith(supported):
          continue
        if exclude and not is_mel_file(name) and _is_under(full, exclude):
          continue
        pairs.append((full, os.path.splitext(os.path.relpath(full, path))[0] + '.wav'))
    if not pairs:
      raise SynthesisInputError(f'{path}: no {"/".join(supported)} files in this folder')
  else:
    raise SynthesisInputError(f'{path}: no such file or folder')
  seen = {}
  for src, out in pairs:
    if out in seen:
      raise SynthesisInputError(f'{seen[out]} and {src} would both be written to {out}; '
                                'rename one or vocode them separately')
    seen[out] = src
  return pairs


def check_output_dir(output_dir):
  """Checks that `output_dir` is, or can be made, a writable folder; creates nothing.

  Raises:
    SynthesisOutputError: it is a file, lies below a file, or its nearest existing folder cannot
      be written (a temporary file is tried there and removed).
  """
  path = os.path.abspath(os.fspath(output_dir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise SynthesisOutputError(f'--output_dir {output_dir} is a file, not a folder; give a folder '
                               'for the wavs')
  probe = path
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise SynthesisOutputError(f'--output_dir {output_dir} cannot be created: {probe} is a file, '
                               'not a folder')
  try:
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as e:
    raise SynthesisOutputError(f'--output_dir {output_dir}: cannot write into {probe} '
                               f'({e.strerror or e}); choose a writable folder') from e


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


def load_input(path, audio_cfg, mel_hop=None, mel_sample_rate=None, check_range=True,
               log_mel_fn=None, declared=None):
  """The mel to vocode from a .npy mel, or from an audio file through the frontend (copy synthesis).

  Args:
    path: a .npy mel file or an audio file.
    audio_cfg: the checkpoint's `audio` section.
    mel_hop, mel_sample_rate, check_range, declared: checks of .npy mels (see `check_mel`).
    log_mel_fn: optional jitted frontend (`make_log_mel_fn`), shared across files.
  Returns:
    [F, n_mels] float32 mel in the checkpoint's convention.
  Raises:
    SynthesisInputError: as `load_mel` / `mel_from_audio_file`.
  """
  return _load_input(path, audio_cfg, mel_hop, mel_sample_rate, check_range, log_mel_fn,
                     declared)[0]


def is_mel_file(path):
  return os.fspath(path).lower().endswith(MEL_EXTENSIONS)


def _load_input(path, audio_cfg, mel_hop, mel_sample_rate, check_range, log_mel_fn,
                declared=None):
  """(mel [F, n_mels], audio [F * hop] or None for a .npy mel); see `load_input`."""
  if is_mel_file(path):
    return load_mel(path, audio_cfg, mel_hop, mel_sample_rate, check_range, declared), None
  # An audio file goes through the checkpoint's own frontend, so mel_hop cannot disagree there.
  return mel_from_audio_file(path, audio_cfg, log_mel_fn)


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
