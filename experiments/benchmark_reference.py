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
import sys

from absl import app
from absl import flags

from wavegrad_jax.studies import reference_benchmark as bench

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


def main(argv):
  del argv
  if _WORKER.value:
    result = bench.worker_result(_WORKER.value, _TASK.value, _WARMUP.value, _TIMED.value,
                                 _THREADS.value)
    print('RESULT ' + json.dumps(result), flush=True)
    return
  if not _OUTPUT.value:
    raise app.UsageError('--output is required')
  tasks = [f'train:{b}' for b in _TRAIN_BATCHES.value]
  tasks += [f'sampler:{s}' for s in _SAMPLER.value]
  options = bench.WorkerOptions(python=_PYTHON.value, warmup=_WARMUP.value, timed=_TIMED.value,
                                threads=_THREADS.value)
  results = bench.run_benchmark(
      tasks, _ROUNDS.value, options, _OUTPUT.value,
      'python -m experiments.benchmark_reference ' + ' '.join(sys.argv[1:]))['results']
  for r in results:
    print(f'{r["task"]:>18}: ours {r["ours"]["seconds"]:.4g} s, reference '
          f'{r["reference"]["seconds"]:.4g} s, speed x{r["speed_ratio"]:.2f}, peak memory '
          f'x{r["peak_memory_ratio"]:.2f}')
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
