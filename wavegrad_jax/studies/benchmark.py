"""Measurements shared by the benchmark launchers (benchmark, benchmark_sampler, accelerator_check).

No flags here, so any launcher can import it. Every measurement compiles ahead of time (untimed),
then times the compiled program on random inputs with random weights: the speed of the network
does not depend on what it has learnt. Memory is the process's running peak (`peak_memory`).
"""
import importlib
import os
import platform
import resource
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax import models as model_lib
from wavegrad_jax.training import options as training_options
from wavegrad_jax.training import parallel
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.evaluation import schedule_search
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.training import trainer as train


def load_config(name):
  """experiments/configs/<name>.py's config."""
  return importlib.import_module(f'experiments.configs.{name}').get_config()


def host_description():
  """JSON-ready facts about where a benchmark ran: devices, JAX, CPU count, load average."""
  return {
      'backend': jax.default_backend(),
      'device_kind': jax.devices()[0].device_kind,
      'device_count': jax.device_count(),
      'process_count': jax.process_count(),
      'jax_version': jax.__version__,
      'host_cpu_count': os.cpu_count(),
      'machine': platform.machine(),
      'python': platform.python_version(),
      # Other processes on a shared host slow every number down; this records how busy it was.
      'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
      'time': time.strftime('%Y-%m-%d %H:%M:%S'),
  }


def peak_memory():
  """The running peak memory of this process's work: device bytes, or host RSS on CPU.

  Returns:
    {'device_peak_bytes': int or None (accelerators: peak_bytes_in_use of device 0),
     'host_peak_rss_bytes': int (the process's maximum resident set size)}.
  """
  stats = None
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except
    stats = None
  device = int(stats['peak_bytes_in_use']) if stats and 'peak_bytes_in_use' in stats else None
  return {'device_peak_bytes': device,
          'host_peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def time_runs(fn, repeats, max_seconds):
  """Median wall seconds of fn() (which blocks), run up to `repeats` times within `max_seconds`."""
  times = []
  while len(times) < max(1, repeats) and (not times or sum(times) < max_seconds):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), len(times)


# ----------------------------------------------------------------------------------- training


def synthetic_batch(config, batch_size, rng):
  """Random crops of the config's shape: {'audio': [B, T] in [-1, 1], 'mel': [B, F, M]}."""
  shapes = train.batch_shapes(config, batch_size)
  return {'audio': np.clip(0.3 * rng.standard_normal(shapes['audio']), -1, 1).astype(np.float32),
          'mel': rng.normal(-4.0, 2.0, shapes['mel']).astype(np.float32)}


class TrainStepSetup(NamedTuple):
  """What `compiled_train_step` returns."""
  config: Any
  model: Any
  tx: Any
  state: Any
  step_fn: Any
  compile_s: float
  batch_sharding: Any


def compiled_train_step(config, batch_size):
  """The train step of `config` at `batch_size`, set up and compiled as train.py does.

  Args:
    config: full config (model, data.segment_frames, train, mesh); copied, not changed.
    batch_size: global batch.
  Returns:
    TrainStepSetup: the config with train.batch_size set, the model and optimiser, the initial
    TrainState, the compiled step step_fn(state, batch) -> (state, metrics), its compile seconds
    and the batch's NamedSharding.
  """
  config = config.copy_and_resolve_references()
  config.train.batch_size = batch_size
  mesh = training_options.make_mesh_from_config(config.mesh)
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  state = train.init_train_state(model, tx, config, mesh)
  start = time.perf_counter()
  step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
  compile_s = time.perf_counter() - start
  return TrainStepSetup(config, model, tx, state, step_fn, compile_s,
                        training_options.batch_sharding_from_config(mesh, config.mesh))


def measure_train(config, batch_size, warmup_steps, timed_steps):
  """Times the compiled train step of `config` at `batch_size` on one synthetic batch.

  Args:
    config: full config (model, data.segment_frames, train, mesh).
    batch_size: global batch.
    warmup_steps: untimed steps after compilation.
    timed_steps: steps timed one by one (each waited for); the median is reported.
  Returns:
    dict: batch_size, params, dtype, compile_s, step_time_median_s / min, steps_per_sec,
    examples_per_sec, audio_seconds_per_sec, last_loss, and `peak_memory()` after the steps.
  """
  config, _, _, state, step_fn, compile_s, sharding = compiled_train_step(config, batch_size)
  batch = parallel.to_global_batch(synthetic_batch(config, batch_size, np.random.default_rng(0)),
                                   sharding, batch_size)
  metrics = None
  for _ in range(warmup_steps):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(timed_steps):
    start = time.perf_counter()
    state, metrics = step_fn(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  seg, hop = int(config.data.segment_frames), int(config.audio.hop_length)
  return {
      'batch_size': batch_size,
      'segment_frames': seg,
      'samples_per_example': seg * hop,
      'params': model_lib.count_params(state.params),
      'dtype': config.model.dtype,
      'compile_s': round(compile_s, 3),
      'step_time_median_s': median,
      'step_time_min_s': float(np.min(times)),
      'steps_per_sec': 1.0 / median,
      'examples_per_sec': batch_size / median,
      'audio_seconds_per_sec': batch_size * seg * hop / int(config.audio.sample_rate) / median,
      'timed_steps': timed_steps,
      'last_loss': float(metrics['loss']),
      **peak_memory(),
  }


# ------------------------------------------------------------------------------------ sampling


def schedule_of_length(config, num_steps):
  """The config's named schedule with `num_steps` betas, else linear 1e-6 .. 0.01."""
  named = config.sampling.named_schedules.to_dict()
  for spec in named.values():
    betas = schedules.parse_schedule(spec)
    if betas.size == num_steps:
      return betas
  return schedules.linear_betas(1e-6, 0.01, num_steps)


def measure_rtf(name, config, model, params, num_steps, batch, seconds, repeats, max_seconds):
  """Real-time factor of the jitted sampler at N steps on a batch of B random mels.

  Args:
    name: config name (recorded).
    config, model, params: what to time.
    num_steps: schedule length N.
    batch: batch size B.
    seconds: audio seconds per item (rounded to whole frames).
    repeats, max_seconds: see `time_runs`.
  Returns:
    dict with rtf (wall / audio seconds), rtf_per_step, wall_seconds, compile_seconds, ...
  """
  hop, rate = int(config.audio.hop_length), int(config.audio.sample_rate)
  frames = max(1, round(seconds * rate / hop))
  mel = jnp.asarray(np.random.default_rng(0).normal(-5.0, 2.0, (batch, frames,
                                                                int(config.audio.n_mels))),
                    jnp.float32)
  if processes.process_name_from_config(config) == 'wavegrad':
    betas = jnp.asarray(schedule_of_length(config, num_steps), jnp.float32)
  else:  # a flow run: N uniform steps of its solver
    betas = jnp.asarray(processes.parse_grid_from_config(config, str(num_steps)), jnp.float32)
  rng = jax.random.PRNGKey(0)
  sampler = processes.sampler_from_config(model, config)
  start = time.perf_counter()
  compiled = sampler.lower(params, betas, mel, rng).compile()
  compile_seconds = time.perf_counter() - start
  wall, runs = time_runs(lambda: jax.block_until_ready(compiled(params, betas, mel, rng)),
                         repeats, max_seconds)
  audio_seconds = batch * frames * hop / rate
  return dict(config=name, num_steps=num_steps, batch_size=batch, frames=frames,
              network_evaluations=processes.network_evaluations_from_config(config, np.asarray(betas)),
              audio_seconds=audio_seconds, wall_seconds=wall, rtf=wall / audio_seconds,
              rtf_per_step=wall / audio_seconds / num_steps, runs=runs,
              compile_seconds=compile_seconds, **peak_memory())


def measure_search(name, config, model, params, num_steps, k, repeats, max_seconds):
  """Candidate schedules scored per second by the search's LS-MSE scorer.

  Args:
    name: config name (recorded).
    config, model, params: what to time (config.search sets the segments).
    num_steps: candidate length N.
    k: candidates per scorer call (vmapped, sharded over every device).
    repeats, max_seconds: see `time_runs`.
  Returns:
    dict with candidates_per_second, wall_seconds per call, compile_seconds, ...
  """
  s = config.search
  hop, n_mels = int(config.audio.hop_length), int(config.audio.n_mels)
  frames, b = int(s.segment_frames), int(s.num_utterances)
  data = np.random.default_rng(0)
  mels = data.normal(-5.0, 2.0, (b, frames, n_mels)).astype(np.float32)
  refs = (0.1 * data.standard_normal((b, frames * hop))).astype(np.float32)
  scorer = schedule_search.make_ls_mse_scorer(sampling.model_eps_fn(model), params, mels, refs,
                                              jax.random.PRNGKey(0), config)
  exps = schedule_search.base_exponents(num_steps, s.exponent_low, s.exponent_high)
  betas = schedule_search.candidate_betas(data.integers(1, 10, (k, num_steps)), exps[None])
  start = time.perf_counter()
  scorer(betas)  # compiles
  compile_seconds = time.perf_counter() - start
  wall, runs = time_runs(lambda: scorer(betas), repeats, max_seconds)
  return dict(config=name, num_steps=num_steps, candidates_per_call=k, segments=b,
              segment_frames=frames, devices=jax.device_count(), wall_seconds=wall,
              candidates_per_second=k / wall, runs=runs, compile_seconds=compile_seconds,
              **peak_memory())
