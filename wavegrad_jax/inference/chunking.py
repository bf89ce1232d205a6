"""Vocoding mels of any length in equal-shape batches of overlapping chunks.

Long inputs are cut into equal chunks of `chunk_frames` mel frames that overlap by
`overlap_frames`, the chunks of many files are batched together, and the overlaps are cross-faded
back (linearly); so the sampler compiles once per (schedule length, [batch, chunk_frames, n_mels])
shape and never per file. The output of an input of F frames has exactly F * hop_length samples.

With GLA-Grad's true magnitude (config.sampling.gla.magnitude='given'), each input also needs the
|STFT| of its clean audio (`make_target_magnitude_fn`), chunked along with its mel.
"""
import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import sampling


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
      pad_value=mel_conventions.silence_value(mel_conventions.Frontend.from_config(config.audio)))


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
