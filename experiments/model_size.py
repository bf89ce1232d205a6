r"""Prints a config's network size: parameters and multiply-accumulates per second of audio.

  python -m experiments.model_size --config=experiments/configs/frame_small.py
  python -m experiments.model_size --config=experiments/configs/base.py --config=...

One line per --config: the network's name, its parameters, and the MACs one network evaluation
costs per second of audio at the config's sample rate (XLA's flop count of the compiled forward
pass over 1 s, halved: `model.macs_per_second`); a sampler's cost is that times its network
evaluations.
"""
from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import cli
from wavegrad_jax import models as model_lib

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  model = model_lib.build_model_from_config(config)
  summary = model_lib.size_summary_from_config(model, config)
  print(f"{summary['name']}: {summary['parameters']:,} parameters, "
        f"{summary['macs_per_second'] / 1e9:.3f} GMAC per second of audio per network "
        f"evaluation ({config.audio.sample_rate} Hz, hop {config.audio.hop_length})")


if __name__ == '__main__':
  cli.run(main)
