"""Training WaveGrad with jax.jit over a device mesh: sharded batches, replicated (or FSDP) state.

The train step is one pure function of (state, batch), compiled ahead of time once per run. The
per-step PRNG key is fold_in(key(config.seed), step), drawn inside the step for the noise level and
the noise; with JAX's partitionable threefry the draws do not depend on how the batch is sharded,
so a step on 8 devices computes what it computes on 1 (up to float reduction order). The input
pipeline is a pure function of (seed, step, host), so a run restarted from a checkpoint at step N
sees exactly the batches and keys an uninterrupted run sees from step N on.

Multi-process runs (several hosts, or one process per GPU): `config.mesh.distributed` = 'auto'
calls `jax.distributed.initialize()` when the environment shows more than one process
(JAX_COORDINATOR_ADDRESS or JAX_NUM_PROCESSES > 1, SLURM_NTASKS > 1, OMPI_COMM_WORLD_SIZE > 1,
several TPU_WORKER_HOSTNAMES, MEGASCALE_COORDINATOR_ADDRESS); jax then detects the cluster from the
same variables. Each process reads only its `1 / process_count` share of every global batch, and
only process 0 writes logs, samples and the config (orbax coordinates checkpoint writes itself).
Preemption: in one process a SIGTERM handler sets a flag checked after every step; with several,
the coordination service's preemption notice is agreed on with
`multihost_utils.reached_preemption_sync_point`, so every process stops at the same step. Either
way a checkpoint of the current step is written and waited for before returning.
"""
import functools
import io
import json
import math
import os
import signal
import threading
import time
from typing import Any

from absl import logging
import flax.struct
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from wavegrad_jax import checkpoints
from wavegrad_jax import diffusion
from wavegrad_jax import model as model_lib
from wavegrad_jax import sampling
from wavegrad_jax import schedules

P = jax.sharding.PartitionSpec
NamedSharding = jax.sharding.NamedSharding


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


# ----------------------------------------------------------------------------------- distributed


_MULTIPROCESS_ENV = ('JAX_COORDINATOR_ADDRESS', 'MEGASCALE_COORDINATOR_ADDRESS')


def _env_int(name):
  try:
    return int(os.environ.get(name, '0'))
  except ValueError:
    return 0


def multiprocess_environment():
  """Whether the environment describes a run of more than one JAX process (see module doc)."""
  if any(os.environ.get(name) for name in _MULTIPROCESS_ENV):
    return True
  if _env_int('JAX_NUM_PROCESSES') > 1 or _env_int('OMPI_COMM_WORLD_SIZE') > 1:
    return True
  if os.environ.get('SLURM_JOB_ID') and _env_int('SLURM_NTASKS') > 1:
    return True
  return len([h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]) > 1


def maybe_initialize_distributed(mode):
  """Calls `jax.distributed.initialize()` as `mode` says; must run before any other JAX call.

  Args:
    mode: 'auto' (initialise when `multiprocess_environment()`), 'always' or 'never'.
  Returns:
    True when this call (or an earlier one) initialised the distributed runtime.
  """
  if mode not in ('auto', 'always', 'never'):
    raise ValueError(f"mesh.distributed must be 'auto', 'always' or 'never', got {mode!r}")
  if jax.distributed.is_initialized():
    return True
  if mode == 'always' or (mode == 'auto' and multiprocess_environment()):
    jax.distributed.initialize()
    logging.info('jax.distributed initialised: process %d of %d', jax.process_index(),
                 jax.process_count())
    return True
  return False


# ------------------------------------------------------------------------------------ mesh, shards


def mesh_shape(mesh_config, num_devices):
  """Resolves the one -1 of `mesh_config.shape` so the mesh covers `num_devices` devices.

  Args:
    mesh_config: the `mesh` config section.
    num_devices: devices in the run (all processes).
  Returns:
    tuple of ints, one per axis name.
  """
  names, shape = tuple(mesh_config.axis_names), [int(s) for s in mesh_config.shape]
  if len(names) != len(shape) or len(set(names)) != len(names):
    raise ValueError(f'mesh.axis_names {names} and mesh.shape {tuple(shape)} must have one '
                     'distinct name per axis size')
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f'mesh.shape {tuple(shape)}: sizes must be positive, with at most one -1')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(f'mesh.shape {tuple(shape)}: {num_devices} devices do not divide by the '
                       f'fixed axes\' product {known}')
    shape[shape.index(-1)] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ValueError(f'mesh.shape {tuple(shape)} has {math.prod(shape)} devices but the run has '
                     f'{num_devices}: use -1 for one axis to take the rest')
  return tuple(shape)


def make_mesh(config, devices=None):
  """The device mesh of `config.mesh` over `devices` (default: every device of every process)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(config.mesh, len(devices))
  names = tuple(config.mesh.axis_names)
  for axis in tuple(config.mesh.batch_axes) + ((config.mesh.fsdp_axis,) if
                                                config.mesh.fsdp_axis else ()):
    if axis not in names:
      raise ValueError(f'mesh axis {axis!r} (from mesh.batch_axes / mesh.fsdp_axis) is not one of '
                       f'mesh.axis_names {names}')
  return jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


def batch_partitions(mesh, config):
  """Number of shards the global batch is split into (product of the batch axes' sizes)."""
  return math.prod(mesh.shape[a] for a in config.mesh.batch_axes)


def check_batch_size(batch_size, mesh, config, what='train.batch_size'):
  """Raises ValueError unless `batch_size` splits evenly over the batch axes and the processes."""
  parts = batch_partitions(mesh, config)
  axes = tuple(config.mesh.batch_axes)
  if batch_size < 1 or batch_size % parts:
    lower = max(parts, batch_size // parts * parts)
    raise ValueError(
        f'{what}={batch_size} does not split evenly over the {parts} batch shards of mesh axes '
        f'{axes} (mesh {dict(mesh.shape)}, {jax.device_count()} devices): use a multiple of '
        f'{parts} (e.g. {lower} or {lower + parts}), or change config.mesh.')
  if batch_size % jax.process_count():
    raise ValueError(f'{what}={batch_size} does not split evenly over {jax.process_count()} '
                     'processes, each of which feeds its own share of the batch')


def batch_sharding(mesh, config):
  """NamedSharding of [B, ...] batch arrays: B split over `config.mesh.batch_axes`."""
  return NamedSharding(mesh, P(tuple(config.mesh.batch_axes)))


def param_partition_spec(shape, mesh, fsdp_axis):
  """Replicated, or (FSDP) the largest dimension divisible by the fsdp axis size split over it."""
  if not fsdp_axis or not shape:
    return P()
  size = mesh.shape[fsdp_axis]
  candidates = [d for d in range(len(shape)) if shape[d] % size == 0 and shape[d] >= size]
  if not candidates:
    return P()
  dim = max(candidates, key=lambda d: shape[d])
  return P(*([None] * dim + [fsdp_axis]))


def state_shardings(abstract_state, mesh, config):
  """Per-leaf NamedShardings for a TrainState (params, EMA and optimiser moments alike)."""
  return jax.tree.map(
      lambda x: NamedSharding(mesh, param_partition_spec(x.shape, mesh, config.mesh.fsdp_axis)),
      abstract_state)


def to_global_batch(local_batch, sharding, global_batch_size):
  """Assembles each process's [B / process_count, ...] numpy arrays into global jax.Arrays.

  Args:
    local_batch: dict of numpy arrays, leading dimension this process's share of the batch.
    sharding: the batch NamedSharding.
    global_batch_size: B summed over processes.
  Returns:
    dict of [B, ...] jax.Arrays sharded by `sharding`.
  """
  return {k: jax.make_array_from_process_local_data(
      sharding, np.asarray(v), (global_batch_size,) + tuple(np.shape(v)[1:]))
          for k, v in local_batch.items()}


def replicated_array(value, sharding):
  """A global jax.Array of `value` (numpy, identical on every process) laid out by `sharding`."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def host_copy(tree):
  """A fully materialised copy of a (possibly sharded, multi-process) pytree as numpy arrays.

  Every process must call it: sharded leaves are gathered across processes.
  """
  def fetch(x):
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree.map(fetch, tree)


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
  shardings = state_shardings(shapes, mesh, config)
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


def train_step(state, batch, *, model, tx, config, levels):
  """One optimiser update on a global batch; pure.

  Args:
    state: TrainState.
    batch: {'audio': [B, T] float32 clean crops, 'mel': [B, T / hop, n_mels] float32 log-mels}.
    model: the WaveGrad module.
    tx: the optax optimiser.
    config: the experiment config (static).
    levels: [S + 1] training noise levels.
  Returns:
    (new state, metrics dict of float32 scalars: loss, grad_norm (before clipping), learning_rate).
  """
  rng = step_rng(config.seed, state.step)
  eps_fn = sampling.model_eps_fn(model)
  audio = batch['audio'].astype(jnp.float32)
  mel = batch['mel'].astype(jnp.float32)

  def loss_fn(params):
    # The model casts to its compute dtype inside and returns float32, so with bf16 compute the
    # loss, its gradient accumulation into float32 params, and the optimiser all stay float32.
    loss, _ = diffusion.denoising_loss(eps_fn, params, rng, audio, mel, levels,
                                       config.diffusion.loss)
    return loss

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = ema_decay(config.train, state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  metrics = {
      'loss': loss,
      'grad_norm': optax.tree.norm(grads),
      'learning_rate': jnp.asarray(learning_rate_schedule(config.train)(state.step), jnp.float32),
  }
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
  check_batch_size(int(config.train.batch_size), mesh, config)
  levels = train_noise_levels(config)
  fn = functools.partial(train_step, model=model, tx=tx, config=config, levels=levels)
  data_sharding = batch_sharding(mesh, config)
  replicated = NamedSharding(mesh, P())
  jitted = jax.jit(fn, in_shardings=(shardings, data_sharding),
                   out_shardings=(shardings, replicated), donate_argnums=(0,))
  abstract_state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                                jax.eval_shape(functools.partial(create_train_state, model, tx,
                                                                 config)), shardings)
  abstract_batch = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=data_sharding)
                    for k, s in batch_shapes(config, int(config.train.batch_size)).items()}
  return jitted.lower(abstract_state, abstract_batch).compile()


def heldout_losses(params, ema_params, batch, index, *, model, config, levels):
  """Mean denoising loss of the raw and EMA parameters on held-out batch `index`; pure.

  The key is fold_in(key(config.train.eval_seed), index): the same at every evaluation, so the
  losses of successive evaluations differ only by the parameters. Both parameter sets see the same
  noise levels and noise, so their difference is the EMA's effect alone.

  Args:
    params, ema_params: parameter trees.
    batch: {'audio': [B, T], 'mel': [B, T / hop, n_mels]} held-out crops.
    index: int32 scalar, the batch's position in the fixed held-out set.
  Returns:
    {'heldout_loss_raw': scalar, 'heldout_loss': scalar (EMA)}.
  """
  rng = jax.random.fold_in(jax.random.key(int(config.train.eval_seed)), index)
  eps_fn = sampling.model_eps_fn(model)
  losses = [diffusion.denoising_loss(eps_fn, p, rng, batch['audio'], batch['mel'], levels,
                                     config.diffusion.loss)[0] for p in (params, ema_params)]
  return {'heldout_loss_raw': losses[0], 'heldout_loss': losses[1]}


def compile_eval_step(model, config, mesh, shardings, batch_size):
  """`heldout_losses` jitted over the mesh: (params, ema_params, batch, index) -> scalars."""
  check_batch_size(batch_size, mesh, config, 'train.eval_batch_size')
  fn = functools.partial(heldout_losses, model=model, config=config,
                         levels=train_noise_levels(config))
  return jax.jit(fn, in_shardings=(shardings.params, shardings.ema_params,
                                   batch_sharding(mesh, config), None),
                 out_shardings=NamedSharding(mesh, P()))


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
    floor: log-mel value of silence, used as padding.
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


def mel_figure(real, generated, title):
  """PNG-rendered comparison of two log-mels [F, M] as an [H, W, 3] uint8 image."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
  vmin, vmax = float(np.min(real)), float(np.max(real))
  for ax, mel, name in zip(axes, (real, generated), ('real', 'generated')):
    ax.imshow(np.asarray(mel).T, origin='lower', aspect='auto', vmin=vmin, vmax=vmax,
              cmap='magma', interpolation='nearest')
    ax.set_ylabel(f'{name}\nmel band')
  axes[0].set_title(title)
  axes[1].set_xlabel('frame')
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=80)
  plt.close(fig)
  buf.seek(0)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.asarray(Image.open(buf).convert('RGB'))


# ------------------------------------------------------------------------------------ reporting


class Reporter:
  """TensorBoard (tensorboardX), a JSONL metrics file and the console; silent off process 0."""

  def __init__(self, workdir, config, start_step):
    self.active = jax.process_index() == 0
    self.tb_dir = os.path.join(workdir, config.logging.tensorboard_dir)
    self.metrics_path = os.path.join(workdir, config.logging.metrics_file)
    self.samples_dir = os.path.join(workdir, config.logging.samples_dir)
    self._writer = None
    self._bar = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    _truncate_metrics(self.metrics_path, start_step)
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    # purge_step hides events a killed run wrote past the checkpoint we resume from.
    self._writer = SummaryWriter(self.tb_dir, purge_step=start_step if start_step else None,
                                 flush_secs=30)
    self._progress = (bool(config.logging.progress_bar), int(config.train.num_steps), start_step)

  def start_progress(self):
    """Shows the tqdm bar (process 0, when config.logging.progress_bar), once training starts."""
    if self.active and self._progress[0] and self._bar is None:
      import tqdm  # pylint: disable=g-import-not-at-top
      _, total, initial = self._progress
      self._bar = tqdm.tqdm(total=total, initial=initial, desc='train', unit='step',
                            dynamic_ncols=True, smoothing=0.1)

  def console(self, message):
    """Prints a line on process 0 (above the progress bar when there is one)."""
    if not self.active:
      return
    if self._bar is not None:
      self._bar.write(message)
    else:
      print(message, flush=True)

  def advance(self, steps=1, **postfix):
    """Moves the progress bar `steps` steps on, showing `postfix` scalars beside it."""
    if self._bar is not None:
      if postfix:
        self._bar.set_postfix({k: f'{v:.4g}' for k, v in postfix.items()}, refresh=False)
      if steps:
        self._bar.update(steps)

  def scalars(self, step, kind, values):
    """Writes {name: float} as TensorBoard scalars `kind/name` and one JSONL record."""
    if not self.active:
      return
    for k, v in values.items():
      self._writer.add_scalar(f'{kind}/{k}', v, step)
    with open(self.metrics_path, 'a') as f:
      f.write(json.dumps({'step': int(step), 'kind': kind,
                          **{k: float(v) for k, v in values.items()}}) + '\n')

  def event(self, step, kind, **fields):
    """Appends a non-scalar JSONL record such as {'step': N, 'kind': 'preempted'}."""
    if self.active:
      with open(self.metrics_path, 'a') as f:
        f.write(json.dumps({'step': int(step), 'kind': kind, **fields}) + '\n')

  def text(self, tag, text, step):
    """Writes markdown text to TensorBoard."""
    if self.active:
      self._writer.add_text(tag, text, step)

  def audio(self, tag, waveform, step, sample_rate):
    """Writes a [T] waveform in [-1, 1] at `sample_rate` Hz as TensorBoard audio."""
    if self.active:
      self._writer.add_audio(tag, np.clip(waveform, -1.0, 1.0), step, sample_rate=sample_rate)

  def image(self, tag, image, step):
    """Writes an [H, W, 3] uint8 image to TensorBoard."""
    if self.active:
      self._writer.add_image(tag, image, step, dataformats='HWC')

  def flush(self):
    """Pushes pending TensorBoard events to disk."""
    if self._writer is not None:
      self._writer.flush()

  def close(self):
    """Closes the progress bar and the TensorBoard writer."""
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.close()


def _truncate_metrics(path, start_step):
  """Drops JSONL records past `start_step`, so a resumed run's file reads as one run's."""
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut off by a kill
      if int(record.get('step', 0)) <= start_step:
        keep.append(json.dumps(record))
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    f.write(''.join(line + '\n' for line in keep))
  os.replace(tmp, path)


class _Preemption:
  """A SIGTERM flag (one process) or the coordination service's agreed notice (several)."""

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._multi = jax.process_count() > 1
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda *_: self._flag.set())

  def requested(self, step):
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._flag.is_set()

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


# -------------------------------------------------------------------------------------- the loop


def _input_pipeline():
  # Imported lazily: the pipeline (and its dataset builders) is only needed by real runs, not by
  # the step functions that tests and the benchmark drive with synthetic batches.
  from wavegrad_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline


def open_dataset(config):
  """`input_pipeline.prepare_dataset(config)`, built by process 0 before the others open it."""
  pipeline = _input_pipeline()
  if jax.process_count() == 1:
    return pipeline.prepare_dataset(config)
  if jax.process_index() == 0:
    splits = pipeline.prepare_dataset(config)
  multihost_utils.sync_global_devices('wavegrad_dataset_prepared')
  if jax.process_index() != 0:
    splits = pipeline.prepare_dataset(config)
  return splits


class _Evaluator:
  """Held-out loss on fixed crops with a fixed key, and vocoded held-out examples."""

  def __init__(self, config, model, mesh, shardings, reporter, splits):
    self.config = config
    self.model = model
    self.reporter = reporter
    c = config.train
    self.batch_size = int(c.eval_batch_size) or int(c.batch_size)
    self.sharding = batch_sharding(mesh, config)
    self.eval_step = compile_eval_step(model, config, mesh, shardings, self.batch_size)
    pipeline = _input_pipeline()
    max_utts = int(c.heldout_loss_utterances) or None
    utterances = pipeline.heldout_utterances(config, split='heldout', max_count=max_utts,
                                             splits=splits)
    crops = heldout_crops(utterances, int(config.data.segment_frames),
                          int(config.audio.hop_length),
                          self.batch_size * int(c.heldout_loss_batches))
    if crops is None:
      reporter.console('no held-out utterance is long enough for a training crop: the held-out '
                       'loss is disabled')
      self.batches = []
    else:
      n = self.batch_size
      self.batches = [{k: replicated_array(v[i * n:(i + 1) * n], self.sharding)
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
    self.sampler = sampling.sampler_from_config(model, config)
    self.betas = schedules.parse_schedule(c.sample_schedule or config.sampling.schedule,
                                          config.sampling.named_schedules)
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
    ema = host_copy(state.ema_params)  # every process takes part in any gather
    if not self.reporter.active:
      return None
    import soundfile  # pylint: disable=g-import-not-at-top
    from wavegrad_jax import audio as audio_lib  # pylint: disable=g-import-not-at-top
    config = self.config
    hop, sr = int(config.audio.hop_length), int(config.audio.sample_rate)
    floor = float(np.log(config.audio.log_floor))
    mels, lengths = example_mels(self.examples, self.example_frames, floor)
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
      self.reporter.image(f'mel/{name}', mel_figure(real_mel, generated_mel,
                                                     f'{name} @ step {step}'), step)
      if not self._wrote_references:
        os.makedirs(ref_dir, exist_ok=True)
        real = np.asarray(u['audio'][:lengths[i] * hop], np.float32)
        soundfile.write(os.path.join(ref_dir, f'{name}.wav'), real, sr)
        self.reporter.audio(f'real/{name}', real, step, sr)
    self._wrote_references = True
    return out_dir


def validate_config(config):
  """Raises ValueError for settings train_and_evaluate cannot run with."""
  c = config.train
  for name in ('num_steps', 'batch_size', 'log_every_steps', 'checkpoint_every_steps',
               'keep_checkpoints'):
    if int(c[name]) < 1:
      raise ValueError(f'train.{name} must be >= 1, got {c[name]}')
  if int(c.eval_every_steps) < 0 or int(c.heldout_loss_batches) < 0:
    raise ValueError('train.eval_every_steps and train.heldout_loss_batches must be >= 0')
  model_lib.validate_topology(config.model, int(config.audio.hop_length))


def check_resume_compatible(workdir, config):
  """Refuses to resume a workdir whose checkpoints hold another model or frontend.

  Without this, restoring would fail on every checkpoint, each would be set aside as unreadable
  and training would silently restart from step 0.

  Raises:
    ValueError naming each differing `model.*` / `audio.*` field (compute dtype excepted).
  """
  if not os.path.exists(os.path.join(workdir, 'config.json')):
    return
  saved = checkpoints.load_config(workdir)
  differences = []
  for section in ('model', 'audio'):
    old, new = saved[section].to_dict(), config[section].to_dict()
    for key in sorted(set(old) | set(new)):
      if key == 'dtype':
        continue
      a, b = old.get(key), new.get(key)
      if json.dumps(a, default=list) != json.dumps(b, default=list):
        differences.append(f'{section}.{key}: {a!r} in the workdir vs {b!r} now')
  if differences:
    raise ValueError(f'{workdir} holds a run with a different model or frontend, so its '
                     'checkpoints cannot be resumed: ' + '; '.join(differences)
                     + '. Use a new --workdir, or the config that run was started with.')


def train_and_evaluate(config, workdir):
  """Trains (resuming from the latest checkpoint in `workdir`) and evaluates periodically.

  Writes under `workdir`: config.json, checkpoints/ (latest `train.keep_checkpoints`),
  checkpoints_best/ (lowest held-out loss), tensorboard/ (scalars, audio, mel images),
  metrics.jsonl (one record per log/eval), samples/step_<N>/<id>.wav (EMA vocoded held-out audio).

  Args:
    config: the experiment ConfigDict (see experiments/configs).
    workdir: output directory; an existing run there is resumed.
  Returns:
    dict with the final 'step', 'preempted' (bool), the last 'loss' / 'heldout_loss' seen, and
    the output paths.
  """
  maybe_initialize_distributed(config.mesh.distributed)
  validate_config(config)
  workdir = os.path.abspath(workdir)
  preemption = _Preemption()
  mesh = make_mesh(config)
  check_batch_size(int(config.train.batch_size), mesh, config)
  model = model_lib.build_model(config)
  tx = make_optimizer(config.train)
  check_resume_compatible(workdir, config)
  ckpts = checkpoints.RunCheckpoints(workdir, config)
  checkpoints.save_config(workdir, config)

  abstract, shardings = abstract_train_state(model, tx, config, mesh)
  state, start_step = ckpts.restore_latest(abstract)
  if state is None:
    state, start_step = init_train_state(model, tx, config, mesh), 0
  reporter = Reporter(workdir, config, start_step)
  reporter.console(
      f'WaveGrad: {model_lib.count_params(abstract.params):,} parameters; mesh '
      f'{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].device_kind} device(s), '
      f'{jax.process_count()} process(es); '
      + (f'resumed from step {start_step}' if start_step else 'starting from scratch'))
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
    _print_outputs(summary, reporter)
    return summary

  compile_start = time.time()
  step_fn = compile_train_step(model, tx, config, mesh, shardings)
  reporter.console(f'train step compiled in {time.time() - compile_start:.1f} s')

  splits = open_dataset(config)
  batches = _input_pipeline().TrainBatches(config, jax.process_index(), jax.process_count(),
                                           num_data_devices=batch_partitions(mesh, config),
                                           splits=splits)
  data_sharding = batch_sharding(mesh, config)
  global_batch = int(config.train.batch_size)
  evaluator = None
  c = config.train
  eval_every, log_every, ckpt_every = (int(c.eval_every_steps), int(c.log_every_steps),
                                       int(c.checkpoint_every_steps))

  reporter.start_progress()
  pending = []
  interval_start, interval_steps = time.time(), 0
  step = start_step
  iterator = batches.iterate(start_step)
  try:
    while step < num_steps:
      local = next(iterator)
      state, metrics = step_fn(state, to_global_batch(local, data_sharding, global_batch))
      pending.append(metrics)
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
        reporter.advance(0, loss=scalars['loss'])
      reporter.advance(1)
      stop = preemption.requested(step)

      paused = time.time()
      if eval_every and (step % eval_every == 0 or step == num_steps) and not stop:
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
        ckpts.save(step, state)
      if stop:
        ckpts.wait_until_finished()
        reporter.event(step, 'preempted')
        reporter.console(f'preemption requested: saved a checkpoint at step {step}, exiting')
        summary['preempted'] = True
        break
      interval_start += time.time() - paused  # evaluation/saving time is not training time
  finally:
    ckpts.close()
    reporter.close()
    preemption.restore()
    close = getattr(iterator, 'close', None)
    if close is not None:
      close()
  summary['step'] = step
  _print_outputs(summary, reporter)
  return summary


def _print_outputs(summary, reporter):
  if not reporter.active:
    return
  print(f'Trained to step {summary["step"]}'
        + (' (preempted)' if summary['preempted'] else '')
        + (f'; last train loss {summary["loss"]:.4f}' if summary['loss'] is not None else '')
        + (f', held-out loss {summary["heldout_loss"]:.4f}'
           if summary['heldout_loss'] is not None else '') + '.')
  print(f'  checkpoints:      {summary["checkpoints"]} (best: {summary["best_checkpoints"]})')
  print(f'  TensorBoard logs: {summary["tensorboard"]}  (tensorboard --logdir '
        f'{summary["tensorboard"]})')
  print(f'  metrics (JSONL):  {summary["metrics"]}')
  print(f'  wav samples:      {summary["samples"]}/step_<N>/<id>.wav')
