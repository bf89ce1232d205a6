"""A launcher for tests: prints what experiments/checkpoint_flags makes of its flags, as JSON.

Run through tests/launcher_driver.py with the inference launchers' flags (--workdir, --config,
--config.<section>.<field>=value); restores the checkpoint as they do.
"""
import json

from experiments import checkpoint_flags


def main(argv):
  del argv
  preview = checkpoint_flags.preview_config()
  params, config, step = checkpoint_flags.load_checkpoint()
  assert params and preview.sampling.eta == config.sampling.eta
  print(json.dumps({'eta': config.sampling.eta, 'ema': config.eval.ema,
                    'steps': config.search.steps, 'step': step,
                    'file': checkpoint_flags.config_file_given()}))
