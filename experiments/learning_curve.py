r"""Learning curves of training runs: every checkpoint scored on held-out speech, with Griffin-Lim.

  python -m experiments.learning_curve --runs=paper=runs/small,priorgrad=runs/small_priorgrad \
      --output=experiments/results/learning_curve_cpu.json
  python -m experiments.learning_curve --runs=runs/tiny --schedules=6 --max_utterances=2 \
      --max_seconds=1 --output=runs/tiny/learning_curve.json

Each checkpoint of each run (--every / --max_step thin them) vocodes the first --max_utterances
utterances of each split, cut to --max_seconds, with each schedule (today's named schedules, or
specs), with the ancestral sampler and the same noise at every checkpoint, and is scored with
LS-MSE, MR-STFT, PESQ, STOI and, when the perceptual extra is installed, DNSMOS and ViSQOL
(`wavegrad_jax.evaluation.compare`). Griffin-Lim alone from the same mels (no model) is scored once per run.
Writes the JSON (every point, the Griffin-Lim rows, a summary with the first step at which each
measure beats Griffin-Lim, the command) and a PNG beside it (same name, .png). The JSON is
rewritten after every checkpoint, and a rerun with the same settings reuses its points, so a killed
study resumes where it stopped (--noresume scores everything again).
"""
import sys

from absl import app
from absl import flags

from experiments import cli
from experiments.configs import common
from wavegrad_jax.studies import learning_curve as study

_RUNS = flags.DEFINE_list('runs', None, 'Training runs, LABEL=WORKDIR or WORKDIR.')
_SCHEDULES = flags.DEFINE_string('schedules', '6,50', "Comma-separated schedules: names of today's "
                                 'sampling.named_schedules, specs or .json paths; each run reads '
                                 "them as its process does (a flow run: time grids, 'N' = N "
                                 'uniform steps).')
_FLOW_SAMPLER = flags.DEFINE_string('flow_sampler', 'euler', "The sampler preset of runs of process "
                                    "'flow' (runs of 'wavegrad' use 'ancestral').")
_SPLITS = flags.DEFINE_list('splits', ['heldout', 'unseen'], 'Splits to score.')
_MAX_UTTERANCES = flags.DEFINE_integer('max_utterances', 8, 'Utterances per split (0: all).')
_MAX_SECONDS = flags.DEFINE_float('max_seconds', 2.8, 'Cut each utterance to this (0: whole).')
_EVERY = flags.DEFINE_integer('every', 0, 'Score only checkpoints whose step is a multiple of '
                              'this (0: all; the latest is always scored).')
_MAX_STEP = flags.DEFINE_integer('max_step', 0, 'Ignore checkpoints above this step (0: none).')
_OUTPUT = flags.DEFINE_string('output', None, 'The JSON to write; the plot goes beside it.')
_RESUME = flags.DEFINE_bool('resume', True, 'Reuse the points of an existing --output JSON made '
                            'with the same settings (a killed study resumes; no point is redone).')
flags.mark_flags_as_required(['runs', 'output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  request = study.LearningCurveRequest(
      runs=_RUNS.value, schedules=_SCHEDULES.value, flow_sampler=_FLOW_SAMPLER.value,
      splits=_SPLITS.value, max_utterances=_MAX_UTTERANCES.value, max_seconds=_MAX_SECONDS.value,
      every=_EVERY.value, max_step=_MAX_STEP.value, output=_OUTPUT.value, resume=_RESUME.value)
  results, png = study.run_study(request, common.get_common_config(), sys.argv)
  for entry in results['summary']:
    print(', '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                    for k, v in entry.items()))
  print(f'wrote {_OUTPUT.value} and {png} ({results["wall_seconds"]:.0f} s)')


if __name__ == '__main__':
  cli.run(main)
