r"""Writes a folder of teacher-forced-style pairs from a corpus: degraded mels beside real audio.

  python -m experiments.make_paired_mels --output_dir=runs/pairs --max_train=200
  python -m experiments.make_paired_mels --output_dir=runs/pairs_clean --max_train=200 \
      --degrade.clean=True
  python -m experiments.make_paired_mels --config=experiments/configs/tiny_hifigan.py \
      --output_dir=runs/pairs_hifigan --degrade.noise_std=0.3

Reads the prepared dataset of --config (the embedded corpus by default, built on first use) and
writes <output_dir>/<utterance id>.npy ([frames, n_mels] float32 in --config's mel convention,
degraded as wavegrad_jax/data/predicted_mels.py describes with the settings of --degrade) and
<output_dir>/<utterance id>.wav (the utterance's audio, 16-bit, exactly frames x hop samples),
plus pairs.json with the settings and the mean deviation of the degraded mels from the real ones.
Read the folder with --config.data.source=paired (experiments/configs/tiny_paired.py). Utterance
ids are kept, so a held-out utterance of the corpus stays held out in the pairs (same
heldout_fraction).
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.data import options as data_options

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/tiny.py', 'Experiment config whose data and audio sections '
    'give the corpus and the mel convention.', lock_config=True)
_DEGRADE = config_flags.DEFINE_config_file(
    'degrade', 'experiments/configs/degrade.py', 'Degradation settings.', lock_config=True)
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'Folder the pairs are written to.')
_MAX_TRAIN = flags.DEFINE_integer('max_train', 200, "Training utterances written, spread evenly "
                                  "over the 'train' split (0: all).")
_MAX_HELDOUT = flags.DEFINE_integer('max_heldout', 0, "Held-out utterances written (0: all of "
                                    "the 'heldout' split).")
flags.mark_flags_as_required(['output_dir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  output_dir = _OUTPUT_DIR.value
  errors.check_output_dir(output_dir, '--output_dir')  # before the corpus is read
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens at INFO.
  summary = data_options.write_pairs_from_config(_CONFIG.value, _DEGRADE.value, output_dir,
                                                _MAX_TRAIN.value, _MAX_HELDOUT.value)
  what = 'real' if _DEGRADE.value.clean else (
      f"degraded (mean deviation {summary['mean_abs_deviation_nats']:.3f} nats)")
  print(f"wrote {summary['pairs']['train']} training and {summary['pairs']['heldout']} held-out "
        f'pairs of {what} mels and audio to {output_dir}')


if __name__ == '__main__':
  cli.run(main)
