r"""Aliasing benchmark: harmonic tones vocoded from their mels, energy between the harmonics.

  python -m experiments.benchmark_aliasing --runs=frame=runs/frame_tiny_flow,paper=runs/tiny \
      --evaluations=4 --output=runs/aliasing.json

Writes the JSON (rows per source and F0: interharmonic_db, foldback_db; the command) and a PNG
beside it (same name, .png) of each source's spectrogram on the highest F0. See
`wavegrad_jax/evaluation/aliasing.py` for the measures and `wavegrad_jax/studies/aliasing.py` for the study.
"""
import os
import sys
import time

from absl import app
from absl import flags

from experiments import cli
from experiments.configs import common
from wavegrad_jax.studies import aliasing as aliasing_study
from wavegrad_jax.evaluation import compare
from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax.evaluation import learning_curve

_RUNS = flags.DEFINE_list('runs', None, 'Training runs, LABEL=WORKDIR or WORKDIR.')
_F0S = flags.DEFINE_list('f0s', ['110', '230', '460', '730', '1030'], 'Tone fundamentals (Hz).')
_EVALUATIONS = flags.DEFINE_integer('evaluations', 4, 'Network evaluations per synthesis.')
_SECONDS = flags.DEFINE_float('seconds', 1.0, 'Tone length (s).')
_OUTPUT = flags.DEFINE_string('output', None, 'The JSON to write; the plot goes beside it.')
flags.mark_flags_as_required(['runs', 'output'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    runs = learning_curve.parse_runs(_RUNS.value)
    f0s = [float(f) for f in _F0S.value]
  except ValueError as e:
    raise errors.UserError(f'--runs / --f0s: {e}') from None
  for label, workdir in runs:
    if not os.path.isdir(workdir):
      raise errors.UserError(f'--runs: {workdir} is not a folder (run {label!r})')
  if not _OUTPUT.value.endswith('.json'):
    raise errors.UserError(f'--output={_OUTPUT.value}: give a .json path (the plot goes beside it)')
  start = time.perf_counter()
  rows, waves, rate = aliasing_study.run_study(runs, f0s, _EVALUATIONS.value, _SECONDS.value,
                                               common.get_common_config())
  png = os.path.splitext(_OUTPUT.value)[0] + '.png'
  aliasing_study.plot_spectrograms(waves, rate, max(f0s), png)
  jsonable.write(_OUTPUT.value, {
      'command': compare.command_line('experiments.benchmark_aliasing', sys.argv),
      'time': time.strftime('%Y-%m-%d %H:%M:%S'), 'evaluations': _EVALUATIONS.value,
      'seconds': _SECONDS.value, 'rows': rows, 'wall_seconds': time.perf_counter() - start})
  for r in rows:
    fold = 'n/a' if r['foldback_excess_db'] is None else f"{r['foldback_excess_db']:+.1f}"
    print(f"{r['source']:>32s}  F0 {r['f0']:6.0f} Hz  interharmonic {r['interharmonic_db']:6.1f} dB"
          f'  fold-back excess {fold} dB')
  print(f'wrote {_OUTPUT.value} and {png}')


if __name__ == '__main__':
  cli.run(main)
