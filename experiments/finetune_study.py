r"""Fine-tuning on predicted-like mels: held-out LS-MSE / MR-STFT on degraded mels before and after.

  python -m experiments.finetune_study --init_from=runs/tiny --workdir=runs/finetune_study \
      --output=experiments/results/finetune_degraded_cpu.json

The logic is wavegrad_jax/studies/finetune.py:
1. Writes two folders of pairs from the same utterances of --source's corpus
   (experiments/make_paired_mels.py): <workdir>/pairs_degraded (mels degraded as
   wavegrad_jax/data/predicted_mels.py describes, settings --degrade) and <workdir>/pairs_clean (the real
   mels: the control).
2. Fine-tunes --init_from on each for --steps steps (experiments/configs/tiny_paired.py with
   train.init_from: EMA weights, a fresh optimiser, its learning rate), in <workdir>/<arm>; rerun
   the command and finished runs are reused.
3. Vocodes the first --max_utterances held-out utterances (never trained on by either run, nor by
   runs/tiny: the pairs keep the corpus's held-out split), cut to --max_seconds, from their degraded
   and their real mels, with the initial weights and each fine-tuned run's EMA weights, all with
   the same noise, and scores them against the real audio (LS-MSE, MR-STFT, mel L1, STOI).

Writes --output (JSON: every figure, the settings, the command) and prints a table.
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.studies import finetune
from wavegrad_jax import jsonable

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/tiny_paired.py', 'Fine-tuning config (its model and audio '
    'sections must match --init_from); its data.dir is replaced by the study folders.',
    lock_config=False)
_DEGRADE = config_flags.DEFINE_config_file(
    'degrade', 'experiments/configs/degrade.py', 'Degradation settings.', lock_config=True)
_SOURCE = config_flags.DEFINE_config_file(
    'source', 'experiments/configs/tiny.py', 'Config whose data section is the corpus the pairs '
    'are made from.', lock_config=True)
_INIT_FROM = flags.DEFINE_string('init_from', None, 'Run (or checkpoint folder) to fine-tune.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Study folder: pairs and the fine-tuned runs.')
_OUTPUT = flags.DEFINE_string('output', None, 'JSON results (default <workdir>/results.json).')
_STEPS = flags.DEFINE_integer('steps', 300, 'Fine-tuning steps of each arm.')
_MAX_TRAIN = flags.DEFINE_integer('max_train', 200, 'Training utterances in the pairs.')
_MAX_UTTERANCES = flags.DEFINE_integer('max_utterances', 12, 'Held-out utterances scored.')
_MAX_SECONDS = flags.DEFINE_float('max_seconds', 2.8, 'Each cut to at most this long.')
_SCHEDULES = flags.DEFINE_string('schedules', '50', 'Inference schedules to score with.')
flags.mark_flags_as_required(['init_from', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  output = _OUTPUT.value or os.path.join(_WORKDIR.value, 'results.json')
  # Checked before the pairs are made and the arms trained (about 40 CPU minutes at the defaults).
  errors.check_output_dir(_WORKDIR.value, '--workdir')
  errors.check_output_file(output, '--output')
  study = finetune.run_study(
      _CONFIG.value, _SOURCE.value, _DEGRADE.value, init_from=_INIT_FROM.value,
      workdir=_WORKDIR.value, steps=_STEPS.value, max_train=_MAX_TRAIN.value,
      max_utterances=_MAX_UTTERANCES.value, max_seconds=_MAX_SECONDS.value,
      schedules=_SCHEDULES.value)
  study['command'] = 'python -m experiments.finetune_study ' + ' '.join(sys.argv[1:])
  study['table'] = finetune.format_table(study)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, 'w') as f:
    json.dump(jsonable.finite(study), f, indent=2)
  print(study['table'])
  print(f'wrote {output}')


if __name__ == '__main__':
  cli.run(main)
