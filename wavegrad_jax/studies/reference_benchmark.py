"""Our Base WaveGrad against the reference PyTorch WaveGrad (lmnt-com/wavegrad 0.1.5), timed alike.

The launcher is experiments/benchmark_reference.py; its docstring says what is measured and how
(fresh processes per measurement, alternating sides, medians and ratios). This module holds both
sides' measurements (`ours`, `reference`, each run in a worker process) and the orchestration
(`compare`, `run_benchmark`). torch and wavegrad are imported only inside `reference`.
"""
import dataclasses
import importlib
import json
import os
import resource
import statistics
import subprocess
import time

from wavegrad_jax import jsonable

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
  """How each worker process measures.

  Fields:
    python: the interpreter running both sides.
    warmup: untimed repetitions after compilation.
    timed: timed repetitions per process (their median is reported).
    threads: the reference's intra-op threads (torch.set_num_threads; OMP_NUM_THREADS).
  """
  python: str
  warmup: int
  timed: int
  threads: int


SEGMENT_FRAMES = 24   # the reference's crop_mel_frames; ours: base.py's data.segment_frames.
HOP = 300
N_MELS = 128
SAMPLE_RATE = 24000   # ours; the reference's 22,050 does not change the work per sample.


def _rss_now():
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) * 1024
  return None


def _peak_rss():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _timed(fn, warmup, timed):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(timed):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _schedule(num_steps):
  """Our named schedule of that length (6: the paper's), as float64 betas."""
  from wavegrad_jax.diffusion import schedules  # pylint: disable=g-import-not-at-top
  # The experiment configs' named schedules (imported by name, as benchmark.load_config does).
  common = importlib.import_module('experiments.configs.common')
  named = common.sampling_config().named_schedules.to_dict()
  for spec in named.values():
    betas = schedules.parse_schedule(spec)
    if betas.size == num_steps:
      return betas
  return schedules.linear_betas(1e-6, 0.01, num_steps)


# ------------------------------------------------------------------------------------------- ours


def ours(task, warmup, timed):
  """One measurement of our implementation; see the module docstring."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.studies import benchmark as benchmark_lib  # pylint: disable=g-import-not-at-top
  from wavegrad_jax import models as model_lib  # pylint: disable=g-import-not-at-top
  from wavegrad_jax import sampling  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.training import parallel  # pylint: disable=g-import-not-at-top
  config = benchmark_lib.load_config('base')
  kind, *args = task.split(':')
  if kind == 'train':
    batch = int(args[0])
    config, _, _, state, step_fn, compile_s, sharding = benchmark_lib.compiled_train_step(
        config, batch)
    data = parallel.to_global_batch(
        benchmark_lib.synthetic_batch(config, batch, np.random.default_rng(0)), sharding, batch)
    holder = [state]

    def step():
      holder[0], metrics = step_fn(holder[0], data)
      jax.block_until_ready(metrics)
    seconds = _timed(step, warmup, timed)
    return {'seconds': seconds, 'compile_seconds': compile_s, 'steps_per_sec': 1 / seconds}
  steps, audio_seconds, batch = int(args[0]), float(args[1]), int(args[2])
  config.sampling.clip = 1.0
  model = model_lib.build_model_from_config(config)
  params = model_lib.random_params_from_config(model, config)
  frames = round(audio_seconds * SAMPLE_RATE / HOP)
  mel = jnp.asarray(np.random.default_rng(0).normal(-5, 2, (batch, frames, N_MELS)), jnp.float32)
  betas = jnp.asarray(_schedule(steps), jnp.float32)
  sampler = sampling.sampler_from_config(model, config)
  start = time.perf_counter()
  compiled = sampler.lower(params, betas, mel, jax.random.key(0)).compile()
  compile_s = time.perf_counter() - start
  seconds = _timed(lambda: jax.block_until_ready(compiled(params, betas, mel, jax.random.key(0))),
                   warmup, timed)
  return {'seconds': seconds, 'compile_seconds': compile_s,
          'rtf': seconds / (batch * frames * HOP / SAMPLE_RATE)}


# -------------------------------------------------------------------------------------- reference


def reference(task, warmup, timed, threads):
  """One measurement of lmnt-com/wavegrad 0.1.5 (torch, CPU); see the module docstring."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  from wavegrad import model as reference_model  # pylint: disable=g-import-not-at-top
  from wavegrad import params as reference_params  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  params = reference_params.params
  model = reference_model.WaveGrad(params)
  kind, *args = task.split(':')
  info = {'torch': torch.__version__, 'wavegrad': metadata.version('wavegrad'),
          'torch_threads': torch.get_num_threads()}
  if kind == 'train':
    batch = int(args[0])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    levels = torch.from_numpy(np.cumprod(1 - np.asarray(params.noise_schedule)) ** 0.5).float()
    levels = torch.cat([torch.ones(1), levels])
    audio = torch.clamp(0.3 * torch.randn(batch, SEGMENT_FRAMES * HOP), -1, 1)
    spectrogram = torch.randn(batch, N_MELS, SEGMENT_FRAMES) * 2 - 4
    loss_fn = nn.L1Loss()

    def step():
      # WaveGradLearner.train_step with fp16 off (the autocast and grad scaler are identities).
      for param in model.parameters():
        param.grad = None
      s = torch.randint(1, len(levels), [batch])
      l_a, l_b = levels[s - 1], levels[s]
      noise_scale = (l_a + torch.rand(batch) * (l_b - l_a)).unsqueeze(1)
      noise = torch.randn_like(audio)
      noisy_audio = noise_scale * audio + (1.0 - noise_scale**2)**0.5 * noise
      predicted = model(noisy_audio, spectrogram, noise_scale.squeeze(1))
      loss = loss_fn(noise, predicted.squeeze(1))
      loss.backward()
      nn.utils.clip_grad_norm_(model.parameters(), params.max_grad_norm)
      optimizer.step()
    seconds = _timed(step, warmup, timed)
    return {'seconds': seconds, 'steps_per_sec': 1 / seconds, **info}
  steps, audio_seconds, batch = int(args[0]), float(args[1]), int(args[2])
  model.eval()
  frames = round(audio_seconds * SAMPLE_RATE / HOP)
  spectrogram = torch.from_numpy(
      np.random.default_rng(0).normal(-5, 2, (batch, N_MELS, frames)).astype(np.float32))
  beta = _schedule(steps)
  alpha = 1 - beta
  alpha_cum = np.cumprod(alpha)
  noise_scale = torch.from_numpy(alpha_cum**0.5).float()

  def predict():
    # wavegrad.inference.predict's loop (that module imports torchaudio, which is not needed).
    with torch.no_grad():
      audio = torch.randn(batch, HOP * frames)
      for n in range(len(alpha) - 1, -1, -1):
        c1 = 1 / alpha[n]**0.5
        c2 = (1 - alpha[n]) / (1 - alpha_cum[n])**0.5
        level = noise_scale[n].expand(batch)
        audio = c1 * (audio - c2 * model(audio, spectrogram, level).squeeze(1))
        if n > 0:
          sigma = ((1.0 - alpha_cum[n - 1]) / (1.0 - alpha_cum[n]) * beta[n])**0.5
          audio += sigma * torch.randn_like(audio)
        audio = torch.clamp(audio, -1.0, 1.0)
    return audio
  seconds = _timed(predict, warmup, timed)
  return {'seconds': seconds, 'rtf': seconds / (batch * frames * HOP / SAMPLE_RATE), **info}


# ----------------------------------------------------------------------------------- orchestrator


def worker_result(side, task, warmup, timed, threads):
  """One measurement in this process (what a worker prints after 'RESULT '), with its memory."""
  if side == 'ours':
    result = ours(task, warmup, timed)
  else:
    result = reference(task, warmup, timed, threads)
  result.update(rss_after_warmup_bytes=_rss_now(), peak_rss_bytes=_peak_rss())
  return result


def _worker_env(threads):
  env = dict(os.environ)
  env['JAX_PLATFORMS'] = 'cpu'
  env.pop('XLA_FLAGS', None)  # one CPU device; XLA's thread pool has one thread per core.
  env['OMP_NUM_THREADS'] = str(threads)
  return env


def run_worker(side, task, options):
  """Runs one measurement in a fresh process; returns its result dict (with load averages)."""
  before = os.getloadavg()
  command = [options.python, '-m', 'experiments.benchmark_reference', f'--worker={side}',
             f'--task={task}', f'--warmup={options.warmup}', f'--timed={options.timed}',
             f'--threads={options.threads}']
  proc = subprocess.run(command, capture_output=True, text=True, env=_worker_env(options.threads),
                        cwd=_REPO, timeout=1800)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if proc.returncode or not lines:
    raise RuntimeError(f'{side} {task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}')
  result = json.loads(lines[-1][len('RESULT '):])
  result['load_average_before'] = before[0]
  result['load_average_after'] = os.getloadavg()[0]
  return result


def compare(task, rounds, options):
  """Alternating rounds of both sides on one task; medians and ratios."""
  runs = {'ours': [], 'reference': []}
  for r in range(rounds):
    for side in (('ours', 'reference') if r % 2 == 0 else ('reference', 'ours')):
      runs[side].append(run_worker(side, task, options))
      print(f'{task} round {r} {side}: {runs[side][-1]["seconds"]:.4g} s, peak RSS '
            f'{runs[side][-1]["peak_rss_bytes"] / 2**20:.0f} MiB', flush=True)
  med = {side: {k: statistics.median(r[k] for r in rs)
                for k in ('seconds', 'peak_rss_bytes', 'rss_after_warmup_bytes')}
         for side, rs in runs.items()}
  return {
      'task': task,
      'ours': med['ours'], 'reference': med['reference'],
      'speed_ratio': med['reference']['seconds'] / med['ours']['seconds'],
      'peak_memory_ratio': med['ours']['peak_rss_bytes'] / med['reference']['peak_rss_bytes'],
      'runs': runs,
  }


def run_benchmark(tasks, rounds, options, output, command):
  """Every task compared over `rounds` rounds; writes the JSON report to `output` and returns it.

  Args:
    tasks: 'train:B' and 'sampler:STEPS:SECONDS:B' task strings.
    rounds: alternating rounds per task.
    options: a `WorkerOptions`.
    output: the JSON path.
    command: the command line recorded in the report.
  """
  start = time.time()
  results = [compare(task, rounds, options) for task in tasks]
  report = {
      'command': command,
      'python': options.python, 'threads': options.threads, 'rounds': rounds,
      'timed_per_process': options.timed, 'host_cpu_count': os.cpu_count(),
      'load_average_at_start_and_end': [list(os.getloadavg())],
      'wall_seconds': time.time() - start, 'results': results,
  }
  report['load_average_at_start_and_end'].insert(0, results[0]['runs']['ours'][0][
      'load_average_before'])
  jsonable.write(output, report)
  return report
