"""Training WaveGrad with jax.jit over a device mesh: sharded batches, replicated (or FSDP) state.

The train step is one pure function of (state, batch), compiled ahead of time once per run. The
per-step PRNG key is fold_in(key(config.seed), step), drawn inside the step for the noise level and
the noise; with JAX's partitionable threefry the draws do not depend on how the batch is sharded,
so a step on 8 devices computes what it computes on 1 (up to float reduction order). The input
pipeline is a pure function of (seed, step, host), so a run restarted from a checkpoint at step N
sees exactly the batches and keys an uninterrupted run sees from step N on.

Multi-process runs (several hosts, or one process per GPU): `config.mesh.distributed` = 'auto'
initialises jax.distributed when the environment shows more than one process (see
`parallel.maybe_initialize_distributed`). Each process reads only its `1 / process_count` share of
every global batch, and only process 0 writes logs, samples and the config (orbax coordinates
checkpoint writes itself). Preemption: in one process a SIGTERM handler sets a flag checked after
every step; with several, the coordination service's preemption notice is agreed on, so every
process stops at the same step (`parallel.Preemption`). Either way a checkpoint of the current step
is written and waited for before returning.

Mesh, shardings and host copies live in `parallel`, TensorBoard / JSONL / console output in
`reporting`; this module holds the optimiser, the pure steps and the loop.
"""
import collections
import functools
import os
import sys
import time
from typing import Any

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import compilation
from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import parallel
from wavegrad_jax.diffusion import priors
from wavegrad_jax import processes
from wavegrad_jax.training import reporting
from wavegrad_jax import sampling
from wavegrad_jax.diffusion import schedules


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (and checkpoints).

  Attributes:
    step: int32 scalar, the number of completed optimiser updates.
    params: float32 model parameters (nested dict, as `model.init` returns).
    ema_params: exponential moving average of `params`, used for evaluation and inference.
    opt_state: optax state of the optimiser.
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any


# ------------------------------------------------------------------------------ optimiser, state


def learning_rate_schedule(train_config):
  """Linear warm-up from 0 to `learning_rate`, then constant or cosine decay (optax schedule)."""
  c = train_config
  peak, warmup = float(c.learning_rate), int(c.warmup_steps)
  if c.lr_schedule == 'constant':
    after = optax.constant_schedule(peak)
  elif c.lr_schedule == 'cosine':
    after = optax.cosine_decay_schedule(peak, max(int(c.num_steps) - warmup, 1),
                                        alpha=float(c.end_lr_factor))
  else:
    raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got {c.lr_schedule!r}")
  if warmup <= 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(train_config):
  """Global-norm clipping then Adam with `learning_rate_schedule` (an optax transformation)."""
  c = train_config
  adam = optax.adam(learning_rate_schedule(c), b1=float(c.adam_b1), b2=float(c.adam_b2),
                    eps=float(c.adam_eps))
  if float(c.grad_clip_norm) > 0:
    return optax.chain(optax.clip_by_global_norm(float(c.grad_clip_norm)), adam)
  return adam


def ema_decay(train_config, step):
  """EMA decay at update `step` (traced int): `ema_decay`, ramped in when `ema_warmup`."""
  decay = jnp.asarray(float(train_config.ema_decay), jnp.float32)
  if train_config.ema_warmup:
    step = jnp.asarray(step, jnp.float32)
    decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return decay


def create_train_state(model, tx, config):
  """A fresh TrainState (step 0) with parameters initialised from key(config.seed).

  Pure: call under `jax.jit(..., out_shardings=...)` to create it directly in its shardings.
  """
  init_rng, _ = jax.random.split(jax.random.key(config.seed))
  params = model_lib.init_params(model, config, init_rng)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))


def abstract_train_state(model, tx, config, mesh):
  """(ShapeDtypeStruct TrainState with shardings, the per-leaf shardings) of a run's state."""
  shapes = jax.eval_shape(functools.partial(create_train_state, model, tx, config))
  shardings = parallel.state_shardings(shapes, mesh, config.mesh)
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          shapes, shardings)
  return abstract, shardings


def init_train_state(model, tx, config, mesh):
  """A fresh TrainState laid out on `mesh` (replicated, or FSDP per `config.mesh.fsdp_axis`)."""
  _, shardings = abstract_train_state(model, tx, config, mesh)
  return jax.jit(functools.partial(create_train_state, model, tx, config),
                 out_shardings=shardings)()


# -------------------------------------------------------------------------------------- the steps


def train_noise_levels(config):
  """Noise levels [S + 1] float32 of `config.diffusion.train_schedule`."""
  betas = schedules.parse_schedule(config.diffusion.train_schedule,
                                   config.sampling.get('named_schedules', None))
  return np.asarray(schedules.noise_levels(betas), np.float32)


def step_rng(seed, step):
  """The PRNG key of training step `step` (traced or not): fold_in(key(seed), step)."""
  return jax.random.fold_in(jax.random.key(seed), step)


def train_step(state, batch, *, model, tx, process, seed, train_config):
  """One optimiser update on a global batch; pure.

  Args:
    state: TrainState.
    batch: {'audio': [B, T] float32 clean crops, 'mel': [B, T / hop, n_mels] float32 log-mels}.
    model: the network module (any entry of `model.MODELS`).
    tx: the optax optimiser.
    process: the generative process (`processes.from_config`): what the step noises, what the
      network predicts and the loss (the paper's noise level and L1 for 'wavegrad').
    seed: the run's seed (config.seed); step n draws from `step_rng(seed, n)`.
    train_config: the `train` section (EMA decay and warm-up, learning-rate schedule).
  Returns:
    (new state, metrics dict of float32 scalars: loss, grad_norm (before clipping), learning_rate,
    and loss_<part> for each part of a composite loss).
  """
  rng = step_rng(seed, state.step)
  net_fn = sampling.model_eps_fn(model)
  audio = batch['audio'].astype(jnp.float32)
  mel = batch['mel'].astype(jnp.float32)

  def loss_fn(params):
    # The model casts to its compute dtype inside and returns float32, so with bf16 compute the
    # loss, its gradient accumulation into float32 params, and the optimiser all stay float32.
    return process.training_loss(net_fn, params, rng, audio, mel)

  (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = ema_decay(train_config, state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  metrics = {
      'loss': loss,
      'grad_norm': optax.tree.norm(grads),
      'learning_rate': jnp.asarray(learning_rate_schedule(train_config)(state.step), jnp.float32),
  }
  if len(parts) > 1:
    metrics.update({f'loss_{k}': v for k, v in parts.items()})
  new_state = TrainState(step=state.step + 1, params=params, ema_params=ema_params,
                         opt_state=opt_state)
  return new_state, metrics


def batch_shapes(config, batch_size):
  """{'audio': (B, seg * hop), 'mel': (B, seg, n_mels)} of training crops."""
  seg, hop = int(config.data.segment_frames), int(config.audio.hop_length)
  return {'audio': (batch_size, seg * hop), 'mel': (batch_size, seg, int(config.audio.n_mels))}


def compile_train_step(model, tx, config, mesh, shardings):
  """`train_step` compiled once, ahead of time, for the run's batch shape and shardings.

  The state argument is donated: its buffers are reused for the new state. Calling the result
  with other shapes or shardings raises instead of silently recompiling.

  Returns:
    compiled(state, batch) -> (state, metrics), metrics replicated.
  """
  parallel.check_batch_size(int(config.train.batch_size), mesh, config.mesh)
  fn = functools.partial(train_step, model=model, tx=tx, process=processes.from_config(config),
                         seed=int(config.seed), train_config=config.train)
  data_sharding = parallel.batch_sharding(mesh, config.mesh)
  jitted = jax.jit(fn, in_shardings=(shardings, data_sharding),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=(0,))
  abstract_state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                                jax.eval_shape(functools.partial(create_train_state, model, tx,
                                                                 config)), shardings)
  abstract_batch = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=data_sharding)
                    for k, s in batch_shapes(config, int(config.train.batch_size)).items()}
  return jitted.lower(abstract_state, abstract_batch).compile()


def heldout_losses(params, ema_params, batch, index, *, model, process, seed):
  """Mean training loss of the raw and EMA parameters on held-out batch `index`; pure.

  The key is fold_in(key(seed), index): the same at every evaluation, so the losses of successive
  evaluations differ only by the parameters. Both parameter sets see the same draws (noise level
  or time, and noise), so their difference is the EMA's effect alone.

  Args:
    params, ema_params: parameter trees.
    batch: {'audio': [B, T], 'mel': [B, T / hop, n_mels]} held-out crops.
    index: int32 scalar, the batch's position in the fixed held-out set.
    model: the network module.
    process: the generative process (as in `train_step`).
    seed: the held-out noise seed (config.train.eval_seed).
  Returns:
    {'heldout_loss_raw': scalar, 'heldout_loss': scalar (EMA)}.
  """
  rng = jax.random.fold_in(jax.random.key(seed), index)
  net_fn = sampling.model_eps_fn(model)
  losses = [process.training_loss(net_fn, p, rng, batch['audio'], batch['mel'])[0]
            for p in (params, ema_params)]
  return {'heldout_loss_raw': losses[0], 'heldout_loss': losses[1]}


def compile_eval_step(model, config, mesh, shardings, batch_size):
  """`heldout_losses` jitted over the mesh: (params, ema_params, batch, index) -> scalars."""
  parallel.check_batch_size(batch_size, mesh, config.mesh, 'train.eval_batch_size')
  fn = functools.partial(heldout_losses, model=model, process=processes.from_config(config),
                         seed=int(config.train.eval_seed))
  return jax.jit(fn, in_shardings=(shardings.params, shardings.ema_params,
                                   parallel.batch_sharding(mesh, config.mesh), None),
                 out_shardings=parallel.replicated(mesh))


# ------------------------------------------------------------------------------ held-out material


def heldout_crops(utterances, segment_frames, hop_length, count):
  """A fixed set of `count` aligned (audio, mel) crops from held-out utterances.

  Crops are non-overlapping, taken round-robin over utterances so that many utterances are
  represented; when the utterances hold fewer than `count` crops, the list repeats (the noise
  drawn for repeats differs).

  Args:
    utterances: list of {'audio': [T] float32, 'mel': [F, n_mels] float32} with F = T // hop.
    segment_frames: mel frames per crop.
    hop_length: samples per mel frame.
    count: crops wanted.
  Returns:
    {'audio': [count, segment_frames * hop] float32, 'mel': [count, segment_frames, n_mels]}, or
    None when no utterance is long enough.
  """
  per_utt = []
  for u in utterances:
    frames = min(len(u['mel']), len(u['audio']) // hop_length)
    per_utt.append([(u, j * segment_frames) for j in range(frames // segment_frames)])
  order = []
  for k in range(max((len(c) for c in per_utt), default=0)):
    order.extend(c[k] for c in per_utt if k < len(c))
  if not order:
    return None
  picks = [order[i % len(order)] for i in range(count)]
  seg = segment_frames * hop_length
  return {
      'audio': np.stack([np.asarray(u['audio'][f * hop_length:f * hop_length + seg], np.float32)
                         for u, f in picks]),
      'mel': np.stack([np.asarray(u['mel'][f:f + segment_frames], np.float32) for u, f in picks]),
  }


def example_mels(utterances, frames, floor):
  """Pads/crops example mels to `frames` so one sampler compilation serves them all.

  Args:
    utterances: list of {'mel': [F_i, n_mels]}.
    frames: common length in mel frames.
    floor: mel value of silence in the frontend's convention (a float, or [n_mels]), the padding.
  Returns:
    ([K, frames, n_mels] float32, [K] int32 real frame counts).
  """
  n_mels = utterances[0]['mel'].shape[-1]
  mels = np.full((len(utterances), frames, n_mels), floor, np.float32)
  lengths = np.zeros(len(utterances), np.int32)
  for i, u in enumerate(utterances):
    m = np.asarray(u['mel'][:frames], np.float32)
    mels[i, :len(m)] = m
    lengths[i] = len(m)
  return mels, lengths


# -------------------------------------------------------------------------------------- the loop


def _input_pipeline():
  # Imported lazily: the pipeline (and its dataset builders) is only needed by real runs, not by
  # the step functions that tests and the benchmark drive with synthetic batches.
  from wavegrad_jax.data import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline


def with_prior_energy_range(config, splits):
  """A copy of `config` with diffusion.prior_energy_range measured on the training split.

  PriorGrad normalises frame energies by the training data's range; recording it in the run's
  config makes resumption, evaluation and synthesis use the very same prior.

  Args:
    config: the run's config.
    splits: `open_dataset(config)`.
  """
  train_split = splits['train']
  low, high = priors.energy_range((train_split[i]['mel'] for i in range(len(train_split))),
                                  config.audio)
  config = config.copy_and_resolve_references()
  config.diffusion.prior_energy_range = (low, high)
  logging.info('PriorGrad frame-energy range of the training data: %.4g .. %.4g', low, high)
  return config


def open_dataset(config):
  """`input_pipeline.prepare_dataset(config)`, built by process 0 before the others open it."""
  return parallel.process_zero_first(lambda: _input_pipeline().prepare_dataset(config),
                                     'wavegrad_dataset_prepared')


class _Evaluator:
  """Held-out loss on fixed crops with a fixed key, and vocoded held-out examples."""

  def __init__(self, config, model, mesh, shardings, reporter, splits):
    self.config = config
    self.model = model
    self.reporter = reporter
    c = config.train
    self.batch_size = int(c.eval_batch_size) or int(c.batch_size)
    self.sharding = parallel.batch_sharding(mesh, config.mesh)
    self.eval_step = compile_eval_step(model, config, mesh, shardings, self.batch_size)
    pipeline = _input_pipeline()
    max_utts = int(c.heldout_loss_utterances) or None
    utterances = pipeline.heldout_utterances(config, split='heldout', max_count=max_utts,
                                             splits=splits)
    crops = heldout_crops(utterances, int(config.data.segment_frames),
                          int(config.audio.hop_length),
                          self.batch_size * int(c.heldout_loss_batches))
    if not utterances:
      # Otherwise the run ends with an empty checkpoints_best/ and no word on why.
      reporter.console(f'the held-out split is empty (data.heldout_fraction='
                       f'{config.data.heldout_fraction}): no held-out loss, no samples and no '
                       'best checkpoint in this run')
      self.batches = []
    elif crops is None:
      reporter.console('no held-out utterance is long enough for a training crop: the held-out '
                       'loss is disabled and no best checkpoint is kept')
      self.batches = []
    else:
      n = self.batch_size
      self.batches = [{k: parallel.replicated_array(v[i * n:(i + 1) * n], self.sharding)
                       for k, v in crops.items()} for i in range(int(c.heldout_loss_batches))]
    self.examples = []
    if int(c.num_audio_examples) > 0:
      self.examples = pipeline.heldout_utterances(config, split='heldout',
                                                  max_count=int(c.num_audio_examples),
                                                  max_seconds=float(c.audio_example_seconds),
                                                  splits=splits)
    hop, sr = int(config.audio.hop_length), int(config.audio.sample_rate)
    self.example_frames = max(1, int(float(c.audio_example_seconds) * sr) // hop)
    if self.examples:
      self.example_frames = min(self.example_frames, max(len(u['mel']) for u in self.examples))
    self.sampler = processes.sampler_from_config(model, config)
    self.betas = processes.parse_grid(config, c.sample_schedule or config.sampling.schedule)
    self._wrote_references = False

  def heldout_loss(self, state):
    """{'heldout_loss' (EMA params), 'heldout_loss_raw'}: means over the fixed crops."""
    if not self.batches:
      return {}
    totals = [self.eval_step(state.params, state.ema_params, b, np.int32(i))
              for i, b in enumerate(self.batches)]
    totals = jax.device_get(totals)
    return {k: float(np.mean([t[k] for t in totals])) for k in totals[0]}

  def vocode_examples(self, state, step):
    """Vocodes the examples with the EMA params; writes wavs, TB audio and mel images (process 0).

    Returns the directory the wavs went to, or None.
    """
    if not self.examples:
      return None
    ema = parallel.host_copy(state.ema_params)  # every process takes part in any gather
    if not self.reporter.active:
      return None
    import soundfile  # pylint: disable=g-import-not-at-top
    from wavegrad_jax.audio import frontend as audio_lib  # pylint: disable=g-import-not-at-top
    config = self.config
    hop, sr = int(config.audio.hop_length), int(config.audio.sample_rate)
    mels, lengths = example_mels(self.examples, self.example_frames,
                                 mel_conventions.silence_value(config.audio))
    device = jax.local_devices()[0]
    ema = jax.device_put(ema, device)
    rng = jax.random.key(int(config.train.sample_seed))
    waves = np.asarray(self.sampler(ema, jnp.asarray(self.betas, jnp.float32),
                                    jax.device_put(mels, device), rng))
    if not np.isfinite(waves).all():
      # An undertrained denoiser's few-step reverse process can diverge; keep the run going.
      self.reporter.console(f'step {step}: generated audio has non-finite samples (the model is '
                            'still far from trained); writing them as 0')
    waves = np.clip(np.nan_to_num(waves, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    out_dir = os.path.join(self.reporter.samples_dir, f'step_{step}')
    os.makedirs(out_dir, exist_ok=True)
    ref_dir = os.path.join(self.reporter.samples_dir, 'reference')
    for i, u in enumerate(self.examples):
      name = str(u['id']).replace('/', '_')
      wave = waves[i, :lengths[i] * hop]
      soundfile.write(os.path.join(out_dir, f'{name}.wav'), wave, sr)
      self.reporter.audio(f'generated/{name}', wave, step, sr)
      generated_mel = np.asarray(audio_lib.log_mel_spectrogram(jnp.asarray(wave), config.audio))
      real_mel = mels[i, :lengths[i]]
      self.reporter.image(f'mel/{name}', reporting.mel_figure(real_mel, generated_mel,
                                                               f'{name} @ step {step}'), step)
      if not self._wrote_references:
        os.makedirs(ref_dir, exist_ok=True)
        real = np.asarray(u['audio'][:lengths[i] * hop], np.float32)
        soundfile.write(os.path.join(ref_dir, f'{name}.wav'), real, sr)
        self.reporter.audio(f'real/{name}', real, step, sr)
    self._wrote_references = True
    return out_dir


class _CompletedSteps:
  """Moves the progress bar on as steps *complete*, not as they are dispatched.

  jax.jit returns before the step has run, so counting calls races ahead of the device and then
  stalls at the next host transfer. Instead each dispatched step's loss (a scalar) is kept, and the
  bar advances once it is ready, waiting on the oldest only when more than `_AHEAD` steps are in
  flight: the device always has queued work, so training is not slowed, and the host never runs
  more than `_AHEAD` steps ahead (bounding the batches and buffers held for queued steps).
  """
  _AHEAD = 2

  def __init__(self, reporter):
    self._reporter = reporter
    self._in_flight = collections.deque()

  def dispatched(self, loss):
    """Records a dispatched step (its loss scalar) and shows the steps that have finished."""
    self._in_flight.append(loss)
    done = 0
    while self._in_flight and (len(self._in_flight) > self._AHEAD
                               or self._in_flight[0].is_ready()):
      self._in_flight.popleft().block_until_ready()
      done += 1
    if done:
      self._reporter.advance(done)

  def all_done(self, **postfix):
    """Waits for every dispatched step and shows them (and `postfix` scalars) as done."""
    for loss in self._in_flight:
      loss.block_until_ready()
    self._reporter.advance(len(self._in_flight), **postfix)
    self._in_flight.clear()


def validate_config(config):
  """Raises errors.ConfigError (a ValueError) for settings train_and_evaluate cannot run with.

  Checks what can be checked without devices, data or files: step counts, batch sizes, the
  learning-rate schedule, the model's topology against the frontend, and the schedules.
  """
  c = config.train
  for name in ('num_steps', 'batch_size', 'log_every_steps', 'checkpoint_every_steps',
               'keep_checkpoints'):
    if int(c[name]) < 1:
      raise errors.ConfigError(f'train.{name} must be >= 1, got {c[name]}')
  for name in ('eval_every_steps', 'heldout_loss_batches', 'eval_batch_size'):
    if int(c[name]) < 0:
      raise errors.ConfigError(f'train.{name} must be >= 0, got {c[name]}')
  if int(config.data.segment_frames) < 1:
    raise errors.ConfigError(f'data.segment_frames must be >= 1, got {config.data.segment_frames}')
  if not 0 <= float(config.data.heldout_fraction) < 1:
    raise errors.ConfigError('data.heldout_fraction must be in [0, 1), got '
                             f'{config.data.heldout_fraction}')
  if int(config.data.get('min_heldout_utterances', 0)) < 0:
    raise errors.ConfigError('data.min_heldout_utterances must be >= 0, got '
                             f'{config.data.min_heldout_utterances}')
  try:
    learning_rate_schedule(c)
    model_lib.build_model(config)  # checks the model variant's fields and topology
    processes.check_name(processes.process_name(config))
    train_noise_levels(config)
    # The process's own options (prediction, loss weights) and the sampler's; with PriorGrad and
    # no recorded energy range both are built once training has measured it.
    measured_later = priors.needs_energy_range(config)
    if not measured_later:
      processes.from_config(config)
    if int(c.eval_every_steps) and int(c.num_audio_examples):
      if not measured_later:
        processes.check_sampling(config)
      processes.parse_grid(config, c.sample_schedule or config.sampling.schedule)
  except errors.ConfigError:
    raise
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None


def validate_devices(config, mesh):
  """Raises errors.ConfigError unless the batch sizes divide over `mesh`'s batch axes."""
  sizes = [('train.batch_size', int(config.train.batch_size))]
  if int(config.train.eval_every_steps):
    sizes.append(('train.eval_batch_size',
                  int(config.train.eval_batch_size) or int(config.train.batch_size)))
  for name, size in sizes:
    try:
      parallel.check_batch_size(size, mesh, config.mesh, name)
    except ValueError as e:
      raise errors.ConfigError(str(e)) from None


def check_resume_compatible(workdir, config):
  """Refuses to resume a workdir whose checkpoints hold another model or frontend.

  Without this, restoring would fail on every checkpoint, each would be set aside as unreadable
  and training would silently restart from step 0.

  Raises:
    ValueError naming each differing `model.*` / `audio.*` field (compute dtype excepted).
  """
  if not os.path.exists(os.path.join(workdir, checkpoints.CONFIG_FILE)):
    return
  differences = checkpoints.frontend_differences(
      checkpoints.load_config(workdir), config, a_name='the workdir', b_name='this run',
      ignore=('model.dtype',))
  if differences:
    raise errors.ResumeMismatchError(
        f'{workdir} holds a run with a different model or frontend, so its checkpoints cannot be '
        'resumed: ' + '; '.join(differences) + '. Nothing was changed. Use a new --workdir, pass '
        '--start_afresh to move the old run into previous_runs/ and train from step 0, or use '
        'the config that run was started with'
        + checkpoints.recorded_choice_hint(checkpoints.load_config(workdir), differences) + '.')


def init_source(workdir, config, *, start_afresh=False):
  """The checkpoint a fine-tune starts from (config.train.init_from), checked against this run.

  Reads only config files, so a mismatch is refused before anything is created or compiled.

  Args:
    workdir: this run's directory.
    config: this run's config.
    start_afresh: the workdir's run is moved aside first, so its checkpoints do not count.
  Returns:
    (init workdir, step for `checkpoints.restore_params`), or None when train.init_from is empty
    or `workdir` already holds a checkpoint (a resumed fine-tune continues from its own).
  Raises:
    errors.ConfigError: init_from is not a workdir or checkpoint folder, or its model or frontend
      differs from this config's (each field named).
  """
  init_from = str(config.train.get('init_from', '') or '')
  periodic = os.path.join(workdir, config.checkpoint.directory)
  if not init_from or (not start_afresh and os.path.isdir(periodic)
                       and any(n.isdigit() for n in os.listdir(periodic))):
    return None
  try:
    source = checkpoints.resolve_checkpoint_path(init_from)
  except FileNotFoundError as e:
    raise errors.ConfigError(f'train.init_from: {e}') from None
  differences = checkpoints.frontend_differences(
      checkpoints.load_config(source[0]), config, a_name='train.init_from', b_name='this run',
      ignore=('model.dtype',))
  if differences:
    raise errors.ConfigError(
        f'train.init_from={init_from} holds a run with another model or frontend, so its weights '
        'cannot start this one: ' + '; '.join(differences) + '. Use a config with its model and '
        'audio sections (e.g. the one it was trained with, with only data and train fields '
        'changed).')
  return source


def init_from_checkpoint(state, shardings, source, config):
  """`state` with the parameters (raw and EMA) of another run's checkpoint; optimiser and step kept.

  Args:
    state: a fresh TrainState (step 0, freshly initialised optimiser state).
    shardings: its per-leaf shardings (`abstract_train_state`).
    source: (workdir, step) from `init_source`.
    config: this run's config (train.init_from_ema picks EMA or raw weights).
  Returns:
    (new TrainState, one line saying where the weights came from).
  """
  ema = bool(config.train.get('init_from_ema', True))
  params, saved, step = checkpoints.restore_params(source[0], source[1], ema=ema)
  differences = checkpoints.frontend_differences(saved, config, a_name='train.init_from',
                                                 b_name='this run', ignore=('model.dtype',))
  if differences:  # the step's own config, in case the workdir's config.json was rewritten
    raise errors.ConfigError(f'{source[0]} step {step} has another model or frontend: '
                             + '; '.join(differences))
  # Two copies: the train step donates the state, so params and EMA must not share buffers.
  params, ema_params = jax.jit(lambda p: (p, jax.tree.map(jnp.copy, p)),
                               out_shardings=(shardings.params, shardings.ema_params))(params)
  line = (f"initialised from {source[0]} step {step} ({'EMA' if ema else 'raw'} weights) with a "
          'fresh optimiser')
  return state.replace(params=params, ema_params=ema_params), line


def train_and_evaluate(config, workdir, *, start_afresh=False):
  """Trains (resuming from the latest checkpoint in `workdir`) and evaluates periodically.

  Writes under `workdir`: config.json, checkpoints/ (latest `train.keep_checkpoints`),
  checkpoints_best/ (lowest held-out loss), tensorboard/ (scalars, audio, mel images),
  metrics.jsonl (one record per log/eval), samples/step_<N>/<id>.wav (EMA vocoded held-out audio).

  Args:
    config: the experiment ConfigDict (see experiments/configs).
    workdir: output directory; an existing run there is resumed.
    start_afresh: first move whatever is in `workdir` into workdir/previous_runs/<time>/, and
      train from step 0.
  Returns:
    dict with the final 'step', 'preempted' (bool), the last 'loss' / 'heldout_loss' seen, and
    the output paths.
  """
  try:
    parallel.maybe_initialize_distributed(config.mesh)
    mesh = parallel.make_mesh(config.mesh)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None
  compilation.enable_persistent_cache(config)
  # Everything that can be wrong with the request is checked before anything is created in the
  # workdir, restored or compiled: the config, the devices, the workdir, the data.
  validate_config(config)
  # config.json and every checkpoint record the dilations themselves, not only their order's name.
  config = model_lib.resolved_config(config)
  validate_devices(config, mesh)
  workdir = os.path.abspath(workdir)
  errors.check_output_dir(workdir, 'the workdir')
  if not start_afresh:
    check_resume_compatible(workdir, config)
  init = init_source(workdir, config, start_afresh=start_afresh)  # reads config files only
  splits = open_dataset(config)  # builds it when needed: a data error stops the run here.
  if priors.needs_energy_range(config):
    config = with_prior_energy_range(config, splits)
  model = model_lib.build_model(config)
  tx = make_optimizer(config.train)
  abstract, shardings = abstract_train_state(model, tx, config, mesh)
  changed = [] if start_afresh else checkpoints.check_resumable(workdir, config, abstract)
  archived = checkpoints.archive_run(workdir) if start_afresh else None
  ckpts = checkpoints.RunCheckpoints(workdir, config)
  state, start_step = ckpts.restore_latest(abstract)
  checkpoints.save_config(workdir, config)
  init_line = None
  if state is None:
    state, start_step = init_train_state(model, tx, config, mesh), 0
    if init is not None:
      state, init_line = init_from_checkpoint(state, shardings, init, config)
  preemption = parallel.Preemption()
  reporter = reporting.Reporter(workdir, config.logging, start_step, config.train.num_steps)
  if init_line:
    reporter.console(init_line)
  reporter.console(
      f'{model_lib.model_name(config.model)} network under process '
      f'{processes.process_name(config)!r}: {model_lib.count_params(abstract.params):,} parameters; mesh '
      f'{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].device_kind} device(s), '
      f'{jax.process_count()} process(es); '
      + (f'resumed from step {start_step}' if start_step else
         'fine-tuning from step 0' if init_line else 'starting from scratch'))
  if changed and start_step:
    reporter.console('resuming under changed settings: ' + '; '.join(changed))
  if archived:
    reporter.console(f'--start_afresh: the run that was in {workdir} is now in {archived}')
  if reporter.metrics_backup:
    reporter.console(f'{reporter.metrics_path} held records past step {start_step}, where this run '
                     f'starts; they were dropped from it, and the whole old file was kept as '
                     f'{reporter.metrics_backup}')
  if reporter.active and not start_step:
    reporter.text('config', '```\n' + str(config) + '\n```', 0)

  summary = {'step': start_step, 'preempted': False, 'loss': None, 'heldout_loss': None,
             'checkpoints': ckpts.directory, 'best_checkpoints': ckpts.best_directory,
             'tensorboard': reporter.tb_dir, 'samples': reporter.samples_dir,
             'metrics': reporter.metrics_path}
  num_steps = int(config.train.num_steps)
  if start_step >= num_steps:
    reporter.console(f'already trained to step {start_step} >= train.num_steps={num_steps}')
    ckpts.close()
    reporter.close()
    preemption.restore()
    reporter.print_outputs(summary)
    return summary

  compile_start = time.time()
  step_fn = compile_train_step(model, tx, config, mesh, shardings)
  reporter.console(f'train step compiled in {time.time() - compile_start:.1f} s')

  read_log = None
  if config.logging.get('record_examples', False):
    os.makedirs(os.path.join(workdir, 'examples_read'), exist_ok=True)
    read_log = os.path.join(workdir, 'examples_read', f'process_{jax.process_index()}.jsonl')
  batches = _input_pipeline().TrainBatches(
      config.data, config.audio, int(config.train.batch_size), jax.process_index(),
      jax.process_count(), num_data_devices=parallel.batch_partitions(mesh, config.mesh),
      splits=splits, read_log=read_log)
  data_sharding = parallel.batch_sharding(mesh, config.mesh)
  global_batch = int(config.train.batch_size)
  evaluator = None
  c = config.train
  eval_every, log_every, ckpt_every = (int(c.eval_every_steps), int(c.log_every_steps),
                                       int(c.checkpoint_every_steps))

  reporter.start_progress()
  pending = []
  progress = _CompletedSteps(reporter)
  interval_start, interval_steps = time.time(), 0
  step = start_step
  iterator = batches.iterate(start_step)
  try:
    while step < num_steps:
      local = next(iterator)
      state, metrics = step_fn(state, parallel.to_global_batch(local, data_sharding,
                                                               global_batch))
      pending.append(metrics)
      progress.dispatched(metrics['loss'])
      step += 1
      interval_steps += 1

      if step % log_every == 0 or step == num_steps:
        values = jax.device_get(pending)
        elapsed = max(time.time() - interval_start, 1e-9)
        scalars = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
        scalars['steps_per_sec'] = interval_steps / elapsed
        scalars['examples_per_sec'] = interval_steps * global_batch / elapsed
        reporter.scalars(step, 'train', scalars)
        summary['loss'] = scalars['loss']
        pending, interval_start, interval_steps = [], time.time(), 0
        progress.all_done(loss=scalars['loss'])
      stop = preemption.requested(step)

      paused = time.time()
      if eval_every and (step % eval_every == 0 or step == num_steps) and not stop:
        progress.all_done()
        if evaluator is None:
          evaluator = _Evaluator(config, model, mesh, shardings, reporter, splits)
        losses = evaluator.heldout_loss(state)
        if losses:
          reporter.scalars(step, 'eval', losses)
          summary['heldout_loss'] = losses['heldout_loss']
          if ckpts.maybe_save_best(step, state, losses['heldout_loss']):
            losses['saved_best'] = True
        wav_dir = evaluator.vocode_examples(state, step)
        reporter.console(f'step {step}: ' + ', '.join(f'{k} {v:.4f}' for k, v in losses.items()
                                                       if k != 'saved_best')
                         + (f'; samples in {wav_dir}' if wav_dir else ''))
        reporter.flush()
      if step % ckpt_every == 0 or step == num_steps or stop:
        progress.all_done()
        ckpts.save(step, state)
      ckpts.check_saves()  # a failed asynchronous save stops the run now, not at the next save
      if stop:
        ckpts.wait_until_finished()
        reporter.event(step, 'preempted')
        reporter.console(f'preemption requested: saved a checkpoint at step {step}, exiting')
        summary['preempted'] = True
        break
      interval_start += time.time() - paused  # evaluation/saving time is not training time
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    # A peer that died mid-collective surfaces here; one that died elsewhere is caught by the
    # coordination service, which stops this process within mesh.heartbeat_timeout_seconds.
    raise RuntimeError(
        f'process {jax.process_index()} of {jax.process_count()}: a computation shared with the '
        f'other processes failed at step {step} ({str(e).splitlines()[0][:300]}), most likely '
        'because another process of this run stopped. Restart every process with the same '
        'command and --workdir: training resumes from the latest checkpoint '
        f'(step {ckpts.latest_step()}).') from e
  finally:
    # With an error on its way out (a failed save, a full disk), closing must not replace it with
    # its own (orbax re-raises the failed write, then "Event loop is closed").
    stopping = sys.exc_info()[1] is not None
    try:
      ckpts.close()  # raises CheckpointSaveError if the last save failed
    except Exception as e:  # pylint: disable=broad-except
      if not stopping:
        raise
      logging.info('closing the checkpoints after an error: %s', e)
    finally:
      try:
        reporter.close()
      except Exception as e:  # pylint: disable=broad-except
        if not stopping:
          raise
        logging.info('closing the reporter after an error: %s', e)
      preemption.restore()
      close = getattr(iterator, 'close', None)
      if close is not None:
        close()
  summary['step'] = step
  reporter.print_outputs(summary)
  return summary

