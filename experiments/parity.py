r"""Learning parity with the reference PyTorch WaveGrad (lmnt-com/wavegrad 0.1.5): JSON and a plot.

Runs in its own venv (torch and the reference are never dependencies of the library):

  python -m venv /tmp/parity-venv && . /tmp/parity-venv/bin/activate
  pip install -r requirements.txt -r experiments/requirements-parity.txt
  pip install --no-deps wavegrad==0.1.5
  nice -n 10 python -m experiments.parity --output=experiments/results/parity_cpu.json

Our model is configured to the reference's variant (experiments/configs/parity.py) and initialised
by our code; the weights are copied into the reference model. Both then see the same batches of real
speech crops, the same noise levels and the same noise, and train with Adam at the same learning
rate with the reference's gradient clipping. The report holds:
  forward      max |ours - reference| of one forward pass (Base), absolute and relative.
  early_steps  the losses of the first training steps of both (Base) and their relative difference.
  curves       held-out loss every `eval_every` steps of both, per seed, on a narrower topology both
               express, their mean and spread over seeds, and whether the bands overlap.
  dilation     ours with the paper's dilation order against the peers' order on the same seeds.
`--config=experiments/configs/parity.py:quick` is a smoke-sized run of every section.
"""
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from wavegrad_jax import errors
from wavegrad_jax.studies import parity_study

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/parity.py',
    'The parity study config (add :quick for a smoke run).',
    lock_config=True)
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON report.')
_PLOT = flags.DEFINE_string('plot', '', "PNG of the curves; '' puts it beside --output (.png).")
flags.mark_flag_as_required('output')


def main(argv):
  """Runs every section and writes the JSON report and the plot."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    from experiments import parity_torch as ref  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit(f'{e}: the parity study needs torch and the reference wavegrad package in its '
                     'own venv: pip install -r requirements.txt -r '
                     'experiments/requirements-parity.txt && pip install --no-deps '
                     'wavegrad==0.1.5') from e
  try:
    _, summary, output, plot_path, failed = parity_study.run_study(
        _CONFIG.value, ref, _OUTPUT.value, _PLOT.value,
        'python -m experiments.parity ' + ' '.join(sys.argv[1:]))
  except errors.UserError as e:
    raise app.UsageError(str(e)) from None
  print(summary)
  print(f'wrote {output} and {plot_path}')
  if failed:  # a non-zero exit, so that CI's quick run catches a divergence from the reference
    raise SystemExit(f'parity FAILED ({", ".join(failed)}); see {output}')


if __name__ == '__main__':
  app.run(main)
