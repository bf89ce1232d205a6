"""The config adapters of the data package, and its typed settings (settings.py) re-exported.

Every function of `wavegrad_jax.data` takes a `DataOptions` (the `data` section) and an
`AudioOptions` (what of the `audio` section reading and storing audio needs: the
`audio.conventions.Frontend` plus the loader's level) or explicit values, never a ConfigDict. The
`*_from_config` adapters here are for the callers above (training, inference, evaluation,
experiments): they build the options and call the typed function.
"""
from typing import Any, Optional, Tuple

from wavegrad_jax.data import pipeline
from wavegrad_jax.data import predicted_mels
from wavegrad_jax.data.settings import AudioOptions, DataOptions, DegradeOptions

__all__ = ['AudioOptions', 'DataOptions', 'DegradeOptions', 'options_from_config',
           'prepare_dataset_from_config', 'heldout_utterances_from_config',
           'global_batch_size_from_config', 'train_batches_from_config', 'write_pairs_from_config']


def options_from_config(config) -> Tuple[DataOptions, AudioOptions]:
  """(DataOptions, AudioOptions) of a full config's `data` and `audio` sections."""
  return DataOptions.from_config(config.data), AudioOptions.from_config(config.audio)


def prepare_dataset_from_config(config):
  """`pipeline.prepare_dataset` of a full config's data and audio sections."""
  return pipeline.prepare_dataset(*options_from_config(config))


def heldout_utterances_from_config(config, split: str = 'heldout', max_count=None,
                                   max_seconds=None, *, splits=None):
  """`pipeline.heldout_utterances` of a full config's data and audio sections."""
  data, audio = options_from_config(config)
  return pipeline.heldout_utterances(data, audio, split, max_count, max_seconds, splits=splits)


def global_batch_size_from_config(config, process_count: int = 1,
                                  num_data_devices: Optional[int] = None) -> int:
  """`pipeline.global_batch_size` of config.train.batch_size."""
  return pipeline.global_batch_size(int(config.train.batch_size), process_count,
                                    num_data_devices)


def train_batches_from_config(config, process_index: int = 0, process_count: int = 1,
                              **kwargs: Any):
  """`pipeline.TrainBatches` of a full config's data and audio sections and train.batch_size."""
  data, audio = options_from_config(config)
  return pipeline.TrainBatches(data, audio, int(config.train.batch_size), process_index,
                               process_count, **kwargs)


def write_pairs_from_config(config, degrade_cfg, output_dir, max_train, max_heldout):
  """`predicted_mels.write_pairs` of a full config and a `degrade` section.

  pairs.json records the sections as they were given (`to_dict()`), as it always has.
  """
  data, audio = options_from_config(config)
  recorded = {'source': {'data': config.data.to_dict(), 'audio': config.audio.to_dict()},
              'degrade': degrade_cfg.to_dict()}
  return predicted_mels.write_pairs(data, audio, DegradeOptions.from_config(degrade_cfg),
                                    output_dir, max_train, max_heldout, recorded)

