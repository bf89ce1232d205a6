r"""Accelerator figures from one command: training speed and memory, sampler RTF, search rate, a run.

  python -m experiments.accelerator_check                 # on one GPU / TPU: about 6 minutes
  python -m experiments.accelerator_check --reduced --output_dir=/tmp/accelerator   # CPU, CI

Writes <output_dir>/accelerator_<device kind>[_reduced].json with the command, the host, and:
  train      Base training examples/s and step time at --train_batch_sizes in each of --dtypes
             (synthetic batches, compiled train step incl. the EMA update), with the running
             peak device memory (host RSS on CPU) after each;
  sampler    sampler RTF at --sampler_steps (6, 50, 1000) x --sampler_batches (1, 16) on 1 s mels;
  search     schedule-search candidates scored per second (N=6, --search_candidates per call);
  run        a short Base training run on the embedded corpus (--run_steps steps through
             train.train_and_evaluate): its losses, steps/s and compile time; skipped with a note
             when the corpus is not on the machine.
Sections are run in that order; once --max_minutes have passed, the ones not started are listed
under 'skipped' instead (the file is still written), so the script always ends within budget.

--reduced is the same script on CPU in well under a minute: the tiny config cut to two UBlocks,
float32 at one batch size, 6 steps at batches 1 and 2, two candidates, a 3-step run on 8 files of
the corpus.
CI runs it (tests/test_accelerator_check.py) so that it cannot rot. Measurements reuse
wavegrad_jax/studies/benchmark.py, the code behind experiments.benchmark and benchmark_sampler.
"""
import sys

from absl import flags
from absl import logging

from experiments import cli
from wavegrad_jax.studies import accelerator

_REDUCED = flags.DEFINE_bool('reduced', False, 'CPU smoke-test sizes (what CI runs).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'experiments/results', 'Where the JSON goes.')
_MAX_MINUTES = flags.DEFINE_float('max_minutes', 7.5, 'Start no section after this long.')
_TRAIN_BATCHES = flags.DEFINE_list('train_batch_sizes', ['16', '64', '256'],
                                   'Base training batch sizes (--reduced: 2).')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'],
                            'Model compute dtypes (--reduced: float32).')
_TIMED_STEPS = flags.DEFINE_integer('timed_steps', 10, 'Timed train steps per measurement.')
_SAMPLER_STEPS = flags.DEFINE_list('sampler_steps', ['6', '50', '1000'],
                                   'Sampler schedule lengths (--reduced: 6).')
_SAMPLER_BATCHES = flags.DEFINE_list('sampler_batches', ['1', '16'],
                                     'Sampler batch sizes (--reduced: 1, 2).')
_SEARCH_CANDIDATES = flags.DEFINE_integer('search_candidates', 64,
                                          'Candidates per scorer call (--reduced: 2).')
_RUN_STEPS = flags.DEFINE_integer('run_steps', 200, 'Steps of the short training run '
                                  '(--reduced: 3).')
_RUN_BATCH = flags.DEFINE_integer('run_batch_size', 32, 'Its batch size (--reduced: 2).')
_TFDS_DIR = flags.DEFINE_string('tfds_dir', '', "The run's prepared-dataset folder ('': the "
                                "config's data.tfds_dir).")


def sizes(flag, reduced_value, reduced):
  """The flag's ints, or `reduced_value` under --reduced when the flag was left at its default."""
  if reduced and not flags.FLAGS[flag.name].present:
    return list(reduced_value)
  return [int(v) for v in flag.value]


def _value(flag, reduced_value, reduced):
  """The flag's value, or `reduced_value` under --reduced when the flag was left at its default."""
  return reduced_value if reduced and not flags.FLAGS[flag.name].present else flag.value


def main(argv):
  """Runs the sections within --max_minutes and writes the JSON."""
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax and TFDS log every file at INFO
  reduced = _REDUCED.value
  plan = accelerator.AcceleratorPlan(
      reduced=reduced, output_dir=_OUTPUT_DIR.value, max_minutes=_MAX_MINUTES.value,
      dtypes=_value(_DTYPES, ['float32'], reduced),
      train_batch_sizes=sizes(_TRAIN_BATCHES, (2,), reduced), timed_steps=_TIMED_STEPS.value,
      sampler_steps=sizes(_SAMPLER_STEPS, (6,), reduced),
      sampler_batches=sizes(_SAMPLER_BATCHES, (1, 2), reduced),
      search_candidates=_value(_SEARCH_CANDIDATES, 2, reduced),
      run_steps=_value(_RUN_STEPS, 3, reduced), run_batch_size=_value(_RUN_BATCH, 2, reduced),
      tfds_dir=_TFDS_DIR.value,
      command='python -m experiments.accelerator_check ' + ' '.join(sys.argv[1:]))
  path, report = accelerator.run_check(plan)
  skipped = report['skipped']
  print(f'wrote {path} ({report["elapsed_seconds"]:.0f} s'
        + (f'; skipped {len(skipped)} measurements past --max_minutes' if skipped else '') + ')')


if __name__ == '__main__':
  cli.run(main)
