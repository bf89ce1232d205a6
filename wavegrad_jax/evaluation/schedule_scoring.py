"""Scoring candidate schedules with the model: LS-MSE of held-out segments, sharded over devices.

A scorer is any function betas [K, N] float64 -> [K] scores (lower is better; NaN counts as
+inf), so tests inject analytic oracles; `make_ls_mse_scorer` vocodes held-out mels with the
model, vmapped over the K candidates and sharded over every device (one mesh axis
'candidates'). `search_segments` cuts the held-out segments it scores.
"""
import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax import processes, sampling
from wavegrad_jax.evaluation import metrics
from wavegrad_jax.training import parallel


# The scorer's mesh: one axis, over which the K candidates of a call are split.
CANDIDATE_MESH = parallel.MeshSpec.one_axis('candidates')


def candidate_mesh(devices=None):
  """The 1-D mesh 'candidates' (`CANDIDATE_MESH`) over `devices` (default: every device)."""
  return parallel.make_mesh(CANDIDATE_MESH, devices)


def make_batched_scorer(eps_fn, params, mels, score_fn, rng, *, hop_length, mesh=None,
                        target_magnitude=None, score_args=(), options=None, sampler=None,
                        **option_values):
  """A scorer that vocodes fixed mels with K candidate schedules at once, sharded over devices.

  Every candidate sees the same mels and the same noise (one rng), so scores differ only by the
  schedule. The candidate axis is sharded over the mesh; K is padded to a multiple of its size.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T].
    params: denoiser parameters (replicated on every device).
    mels: [B, F, M] conditioning.
    score_fn: jittable score_fn(generated [K, B, F * hop], *score_args) -> [K] scores.
    rng: PRNG key of the reverse diffusion.
    hop_length: samples per frame.
    mesh: a Mesh with axis 'candidates' (default: every device).
    target_magnitude: [B, F * hop // gla hop, gla n_fft // 2 + 1] |STFT| of the clean segments,
      for GLA magnitude 'given' only; shared by every candidate.
    score_args: arrays score_fn needs (reference audio, say), passed as replicated arguments
      rather than closed over, so they are not baked into the compiled program as constants.
    options: `sampling.SamplerOptions` of the reverse process (None: the defaults).
    sampler: a multi-grid sampler(params, grids [K, ...], mel, rng, target_magnitude=...) to use
      instead of reverse diffusion with `options` (a flow run's ODE solver,
      `processes.sampler_from_config(..., multi=True)`); its grids are what the scorer takes.
    **option_values: its fields to replace (eta=0.0, ...), as `sampling.make_sampler` takes them.
  Returns:
    scorer(betas [K, N]) -> [K] float64 numpy, NaN mapped to +inf. K is padded up to a power of
    two (and a multiple of the device count), so calls with any K compile at most log2(K) + 1 times.
  """
  mesh = mesh if mesh is not None else candidate_mesh()
  if sampler is None:
    sampler = sampling.make_multi_schedule_sampler(eps_fn, hop_length=hop_length,
                                                   options=options, **option_values)
  replicated = parallel.replicated(mesh)
  by_candidate = parallel.batch_sharding(mesh, CANDIDATE_MESH)

  def score(params, betas, mel, rng, target, args):
    return score_fn(sampler(params, betas, mel, rng, target_magnitude=target), *args)

  jitted = jax.jit(score, in_shardings=(replicated, by_candidate, replicated, replicated,
                                        replicated, replicated), out_shardings=by_candidate)
  score_args = tuple(jax.device_put(jnp.asarray(a), replicated) for a in score_args)
  params = jax.device_put(params, replicated)
  mels = jax.device_put(jnp.asarray(mels, jnp.float32), replicated)
  rng = jax.device_put(rng, replicated)
  if target_magnitude is not None:
    target_magnitude = jax.device_put(jnp.asarray(target_magnitude, jnp.float32), replicated)
  n_dev = mesh.devices.size

  def scorer(betas):
    betas = np.asarray(betas, np.float32)
    k = betas.shape[0]
    padded = 1 << max(k - 1, 0).bit_length()  # few distinct shapes: few compilations
    padded += -padded % n_dev
    pad = padded - k
    if pad:  # repeats of the last candidate: results dropped, shapes divisible by the mesh.
      betas = np.concatenate([betas, np.repeat(betas[-1:], pad, axis=0)])
    out = np.asarray(jitted(params, jax.device_put(betas, by_candidate), mels, rng,
                            target_magnitude, score_args), np.float64)
    out = out[:k]
    return np.where(np.isfinite(out), out, np.inf)

  scorer.num_compilations = jitted._cache_size  # pylint: disable=protected-access
  return scorer


def make_ls_mse_scorer(eps_fn, params, mels, references, rng, config, mesh=None):
  """The search's scorer: mean LS-MSE of the vocoded mels against their reference audio.

  Args:
    eps_fn: the model's denoiser (`sampling.model_eps_fn(model)`) or an oracle.
    params: its parameters.
    mels: [B, F, n_mels] held-out log-mels.
    references: [B, F * hop] the matching audio.
    rng: PRNG key shared by every candidate.
    config: the full config (audio, sampling incl. GLA, eval LS-MSE settings). With GLA
      magnitude 'given' the target |STFT| is the references'.
    mesh: optional device mesh (default: every device).
  Returns:
    scorer(betas [K, N]) -> [K] float64 mean LS-MSE over the B segments; for a run of process
    'flow', scorer(times [K, N + 1]) over time grids.
  """
  options = sampling.SamplerOptions.from_config(config)
  sampler = None
  if processes.process_name_from_config(config) != 'wavegrad':
    sampler = processes.make_sampler_from_config(processes.from_config(config), eps_fn, config,
                                                 multi=True)
    options = None
  e = config.eval
  ls_cfg = metrics.ls_mse_audio_config(config.audio, e.ls_mse_window_hops, e.ls_mse_hop_divisor)
  references = jnp.asarray(references, jnp.float32)
  eps = float(e.ls_mse_eps)

  def score_fn(generated, refs):
    return jnp.mean(metrics.ls_mse(generated, refs[None], ls_cfg, eps), axis=-1)

  target = None
  gla = options.gla if options is not None else None
  if gla is not None and gla.magnitude == 'given':
    # The references are the clean segments: their |STFT| is the true magnitude ('given').
    gl = gla.griffin_lim
    target = audio_lib.stft_magnitude(references, gl.n_fft, gl.hop_length, gl.win_length,
                                      gl.window, gl.pad_mode, gl.framing)
  return make_batched_scorer(eps_fn, params, mels, score_fn, rng,
                             hop_length=int(config.audio.hop_length), mesh=mesh,
                             target_magnitude=target, score_args=(references,), options=options,
                             sampler=sampler)


def search_segments(utterances, num_utterances, segment_frames, hop_length, pad_value):
  """Cuts the loudest `segment_frames` frames of the first utterances, with their audio.

  Args:
    utterances: list of {'audio' [T], 'mel' [F, M], ...} (`input_pipeline.heldout_utterances`).
    num_utterances: how many to use.
    segment_frames: frames per segment; shorter utterances are padded with silence.
    hop_length: samples per frame.
    pad_value: log-mel of silence.
  Returns:
    (mels [B, segment_frames, M] float32, audio [B, segment_frames * hop] float32, ids list).
  """
  if not utterances:
    raise ValueError('no held-out utterances to score schedules on')
  mels, refs, ids = [], [], []
  for u in utterances[:num_utterances]:
    mel = np.asarray(u['mel'], np.float32)
    wave = np.asarray(u['audio'], np.float32)
    f = mel.shape[0]
    if f >= segment_frames:
      energy = np.convolve(np.exp(mel).sum(axis=1), np.ones(segment_frames), mode='valid')
      start = int(np.argmax(energy))
    else:
      start = 0
    seg = np.full((segment_frames, mel.shape[1]), pad_value, np.float32)
    take = mel[start:start + segment_frames]
    seg[:take.shape[0]] = take
    ref = np.zeros(segment_frames * hop_length, np.float32)
    piece = wave[start * hop_length:(start + take.shape[0]) * hop_length]
    ref[:piece.size] = piece
    mels.append(seg)
    refs.append(ref)
    ids.append(u.get('id', str(len(ids))))
  return np.stack(mels), np.stack(refs), ids
