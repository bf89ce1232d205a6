r"""Our Base WaveGrad against the reference PyTorch implementation, side by side on this machine.

  python -m experiments.benchmark_reference --output=experiments/results/reference_cpu.json

Needs the reference as an optional extra, never a dependency of the library or its tests: the
parity study's venv (README "Parity"), `pip install -r requirements.txt -r
experiments/requirements-parity.txt` then `pip install --no-deps wavegrad==0.1.5`
(lmnt-com/wavegrad; its model needs only torch). Run it with that venv's python, which then runs
both sides (--python picks another interpreter).

Every measurement runs in a fresh process of one side only (so peak memory is that side's alone),
and the two sides alternate, ours first in even rounds and the reference first in odd ones, over
--rounds rounds, so that both see the same load on a shared machine; the JSON reports the medians,
their ratios and the load average around each run. The reference uses --threads intra-op threads
(torch.set_num_threads); XLA's CPU runtime uses one thread per core, so set --threads to the core
count for a like-for-like comparison.

  train    one Base optimiser step (Adam, global-norm clipping at 1, L1 loss on eps) on a random
           batch of B crops of 24 frames (7,200 samples): ours also updates the EMA of the
           parameters; the reference repeats `WaveGradLearner.train_step` (fp16 off).
  sampler  the 6- (or N-) step reverse process on B random mels of S seconds, as the reference's
           `inference.predict` (ancestral steps, clamped to [-1, 1] after each); ours with
           sampling.clip=1.

Both sides use random weights (speed does not depend on them) and the same schedules. Reported:
seconds per train step / per sampler call (median over timed repetitions, compilation excluded),
steps/s, RTF, peak resident memory (the process's maxrss, which for ours includes compiling) and
resident memory after warm-up; ratio = reference time / our time (above 1: ours is faster) and
memory ratio = our peak / reference peak.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from wavegrad_jax import jsonable

_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON (orchestrator).')
_TRAIN_BATCHES = flags.DEFINE_list('train_batch_sizes', ['2', '4', '8'], 'Train batch sizes.')
_SAMPLER = flags.DEFINE_list('sampler', ['6:1:1', '6:10:1', '50:1:1'],
                             'Sampler measurements STEPS:SECONDS:BATCH.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating rounds per measurement.')
_THREADS = flags.DEFINE_integer('threads', os.cpu_count(), "The reference's intra-op threads.")
_TIMED = flags.DEFINE_integer('timed', 5, 'Timed repetitions per process (median).')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed repetitions after compilation.')
_PYTHON = flags.DEFINE_string('python', sys.executable, 'Interpreter running both sides.')
# One measurement in this process (what the orchestrator launches).
_WORKER = flags.DEFINE_enum('worker', None, ['ours', 'reference'], 'Run one side once.')
_TASK = flags.DEFINE_string('task', '', "Worker task: 'train:B' or 'sampler:STEPS:SECONDS:B'.")

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
  from experiments.configs import common  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.diffusion import schedules  # pylint: disable=g-import-not-at-top
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
  model = model_lib.build_model(config)
  params = model_lib.random_params(model, config)
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


def _worker_env(threads):
  env = dict(os.environ)
  env['JAX_PLATFORMS'] = 'cpu'
  env.pop('XLA_FLAGS', None)  # one CPU device; XLA's thread pool has one thread per core.
  env['OMP_NUM_THREADS'] = str(threads)
  return env


def run_worker(side, task):
  """Runs one measurement in a fresh process; returns its result dict (with load averages)."""
  before = os.getloadavg()
  command = [_PYTHON.value, '-m', 'experiments.benchmark_reference', f'--worker={side}',
             f'--task={task}', f'--warmup={_WARMUP.value}', f'--timed={_TIMED.value}',
             f'--threads={_THREADS.value}']
  proc = subprocess.run(command, capture_output=True, text=True, env=_worker_env(_THREADS.value),
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        timeout=1800)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  if proc.returncode or not lines:
    raise RuntimeError(f'{side} {task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}')
  result = json.loads(lines[-1][len('RESULT '):])
  result['load_average_before'] = before[0]
  result['load_average_after'] = os.getloadavg()[0]
  return result


def compare(task):
  """Alternating rounds of both sides on one task; medians and ratios."""
  runs = {'ours': [], 'reference': []}
  for r in range(_ROUNDS.value):
    for side in (('ours', 'reference') if r % 2 == 0 else ('reference', 'ours')):
      runs[side].append(run_worker(side, task))
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


def main(argv):
  del argv
  if _WORKER.value:
    if _WORKER.value == 'ours':
      result = ours(_TASK.value, _WARMUP.value, _TIMED.value)
    else:
      result = reference(_TASK.value, _WARMUP.value, _TIMED.value, _THREADS.value)
    result.update(rss_after_warmup_bytes=_rss_now(), peak_rss_bytes=_peak_rss())
    print('RESULT ' + json.dumps(result), flush=True)
    return
  if not _OUTPUT.value:
    raise app.UsageError('--output is required')
  tasks = [f'train:{b}' for b in _TRAIN_BATCHES.value]
  tasks += [f'sampler:{s}' for s in _SAMPLER.value]
  start = time.time()
  results = [compare(task) for task in tasks]
  report = {
      'command': 'python -m experiments.benchmark_reference ' + ' '.join(sys.argv[1:]),
      'python': _PYTHON.value, 'threads': _THREADS.value, 'rounds': _ROUNDS.value,
      'timed_per_process': _TIMED.value, 'host_cpu_count': os.cpu_count(),
      'load_average_at_start_and_end': [list(os.getloadavg())],
      'wall_seconds': time.time() - start, 'results': results,
  }
  report['load_average_at_start_and_end'].insert(0, results[0]['runs']['ours'][0][
      'load_average_before'])
  jsonable.write(_OUTPUT.value, report)
  for r in results:
    print(f'{r["task"]:>18}: ours {r["ours"]["seconds"]:.4g} s, reference '
          f'{r["reference"]["seconds"]:.4g} s, speed x{r["speed_ratio"]:.2f}, peak memory '
          f'x{r["peak_memory_ratio"]:.2f}')
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
