"""TFDS builders for the vocoder's corpora, written as array_record without TensorFlow.

The corpus is picked by `config.data.source` from `registry.CORPORA` (each corpus lists its files
in its own module: 'fillets', the embedded default, in fillets.py; 'ljspeech'; 'folder'); every
corpus is then read (reading.py), cut into splits (splits.py), named (fingerprint.py) and stored
the same way, by this module, which holds the TFDS builder and `prepare`.

Each example holds one utterance: 'audio' [T] float32 at audio.sample_rate, peak-normalised as
`audio.load_audio` does and trimmed to T = frames * hop_length samples; 'mel' [frames, n_mels]
float32, `audio.log_mel_spectrogram` of that whole trimmed utterance; 'speaker' and 'id' strings.
Examples are stored in utterance-id order (shuffling disabled), so record i of a split is the i-th
utterance id of that split and `info.metadata['frames'][split][i]` is its frame count. Read them
with `wavegrad_jax.data.pipeline`, or without this code through
`tfds.builder_from_directory(<dataset folder>).as_data_source()`.

Where the data go: `<config.data.tfds_dir>/<builder name>/<config name>/<version>/` (the corpus's
`builder_name`: fillets_speech, ljspeech_folder and audio_folder), e.g.
`~/tensorflow_datasets/fillets_speech/sr22050-hop256-...-1a2b3c4d5e/1.0.0/`. The config name spells
out the audio values that shape the stored arrays and ends in a hash of every value that affects
the stored data (the audio section's frontend values, the source, its folder, the split and subset
settings), so changing any of them builds a new dataset beside the old one instead of reusing stale
arrays. The dataset also records every source file's size and modification time
(`info.metadata['source_files']`); opening it lists the source again, and when a file was added,
removed or changed (fixed, re-encoded) the stale dataset is deleted and rebuilt, with a message
naming what changed. A source folder that has gone away leaves the prepared dataset usable.

Splits: 'train', 'heldout' (a deterministic `heldout_fraction` of the training speakers' files,
chosen by a hash of the utterance id, topped up to `min_heldout_utterances` for small corpora) and
'unseen' (speakers never trained on). A split with no
utterances is not written; `wavegrad_jax.data.pipeline` presents it as empty.

Unreadable files are logged by path, skipped and counted in a summary printed at the end of the
build (also kept in `info.metadata['summary']`); a build where no file could be read, or whose
folder is missing or empty, raises `DataSourceError` naming the folder and what was expected.
"""

import concurrent.futures
import dataclasses
import functools
import json
import os
import shutil
import types
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from wavegrad_jax.data import registry
from wavegrad_jax.data.corpus import DataSourceError
from wavegrad_jax.data.fingerprint import FORMAT_VERSION, config_name, listing_changes
from wavegrad_jax.data.fingerprint import source_listing, stored_data_values
from wavegrad_jax.data.settings import AudioOptions, DataOptions
from wavegrad_jax.data.reading import batched_log_mels, make_mel_fn, read_utterance
from wavegrad_jax.data.splits import SPLITS, BuildPlan, Utterance, list_source_files, make_plan

__all__ = ['SPLITS', 'DataSourceError', 'SpeechBuilderConfig', 'make_builder', 'stale_reason',
           'prepare']


# ---------------------------------------------------------------------------------------- builders


@dataclasses.dataclass(eq=False)
class SpeechBuilderConfig(tfds.core.BuilderConfig):
  """A builder config whose name encodes `values` (from `stored_data_values`)."""
  values: Dict[str, Any] = dataclasses.field(default_factory=dict)


class _SpeechBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The builder of every corpus; one subclass per corpus sets its name (see `_builder_class`)."""

  VERSION = tfds.core.Version(FORMAT_VERSION)
  RELEASE_NOTES = {'1.0.0': 'audio, log-mel, speaker and id per utterance, in id order.'}

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup probes the `importlib_resources` backport, which is not installed.
    return epath.Path(__file__)

  def __init__(self, *, data: DataOptions, audio: AudioOptions,
               plan: Optional[BuildPlan] = None, **kwargs):
    """Opens (or gets ready to build) the dataset of `data` and `audio`.

    Args:
      data: the data options.
      audio: the audio options.
      plan: a `make_plan` result to build from; made on demand when None.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (data_dir, file_format).
    """
    self._data = data
    self._audio = audio
    self._plan = plan
    values = stored_data_values(data, audio)
    config = SpeechBuilderConfig(name=config_name(values), version=FORMAT_VERSION,
                                 description=json.dumps(values, sort_keys=True), values=values)
    super().__init__(config=config, **kwargs)

  def _create_builder_config(self, requested, version):  # pylint: disable=arguments-renamed
    # `requested` is a TFDS BuilderConfig (or its name). Every one here is made from the run's
    # settings, never from a registered list; TFDS would log a warning with the whole config on
    # each open for such "custom" configs.
    if isinstance(requested, SpeechBuilderConfig):
      return requested
    return super()._create_builder_config(requested, version)

  def is_built(self) -> bool:
    """Whether the dataset is fully written (TFDS renames it into place only when complete)."""
    return os.path.isfile(os.path.join(self.data_dir, 'dataset_info.json'))

  @property
  def plan(self) -> BuildPlan:
    """The build plan (reads every source file the first time)."""
    if self._plan is None:
      self._plan = make_plan(self._data, self._audio)
    return self._plan

  def _info(self) -> tfds.core.DatasetInfo:
    n_mels = int(self._audio.n_mels)
    raw = tfds.features.Encoding.BYTES  # raw float32 bytes: fastest to write and to read back.
    return tfds.core.DatasetInfo(
        builder=self,
        description=(__doc__ or '').split('\n', 1)[0],
        features=tfds.features.FeaturesDict({
            'id': tfds.features.Text(),
            'speaker': tfds.features.Text(),
            'audio': tfds.features.Tensor(shape=(None,), dtype=np.float32, encoding=raw),
            'mel': tfds.features.Tensor(shape=(None, n_mels), dtype=np.float32, encoding=raw),
        }),
        metadata=tfds.core.MetadataDict(),
        # Id order makes record i predictable (metadata frames, fixed held-out examples).
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the source is a local folder.
    plan = self.plan
    self.info.metadata['summary'] = plan.summary
    self.info.metadata['source_files'] = plan.source_files
    self.info.metadata['frames'] = {k: [u.frames for u in v] for k, v in plan.utterances.items()}
    # TFDS cannot write an empty split; readers treat an absent split as empty.
    return {k: self._generate_examples(v) for k, v in plan.utterances.items() if v}

  def _generate_examples(self, utterances: Sequence[Utterance]) -> Iterator[Tuple[str, dict]]:
    cfg, audio = self._data, self._audio
    hop = int(audio.hop_length)
    mel_fn = make_mel_fn(audio)
    chunk_samples = int(cfg.build_chunk_samples)
    with concurrent.futures.ThreadPoolExecutor(max(1, int(cfg.build_threads))) as pool:
      start = 0
      while start < len(utterances):
        # Loading a chunk of files at once fills the mel batches with many windows.
        stop, total = start, 0
        while stop < len(utterances) and (stop == start or total < chunk_samples):
          total += utterances[stop].frames * hop
          stop += 1
        chunk = utterances[start:stop]
        reads = list(pool.map(lambda u: read_utterance(u, cfg, audio), chunk))
        waves = [w for w, _ in reads]
        for u, w in zip(chunk, waves):
          if w.shape[0] != u.frames * hop:
            raise DataSourceError(f'{u.path} changed while the dataset was being built '
                                  f'({u.frames * hop} samples, now {w.shape[0]}); build again')
        # Stored mels (paired corpora) are kept; the others are computed from their audio.
        computed = iter(batched_log_mels([w for w, m in reads if m is None], audio, mel_fn,
                                         int(cfg.mel_batch_samples), int(cfg.mel_window_frames)))
        mels = [m if m is not None else next(computed) for _, m in reads]
        for u, w, m in zip(chunk, waves, mels):
          yield u.uid, {'id': u.uid, 'speaker': u.speaker, 'audio': w, 'mel': m}
        start = stop


@functools.cache
def _builder_class(builder_name, description):
  """The TFDS builder class named `builder_name` (the name of its data folder), made once."""
  class_name = ''.join(part.title() for part in builder_name.split('_'))
  return types.new_class(class_name, (_SpeechBuilder,), {'skip_registration': True},
                         lambda ns: ns.update(name=builder_name, __doc__=description,
                                              __module__=__name__))


def make_builder(data: DataOptions, audio: AudioOptions) -> _SpeechBuilder:
  """The builder for `data.source`, rooted at `data.tfds_dir`; builds nothing.

  Args:
    data: the data options.
    audio: the audio options.
  Returns:
    a builder whose `is_built()` says whether the data are already there.
  Raises:
    DataSourceError: the source is unknown.
  """
  corpus = registry.get_corpus(data.source)
  builder_class = _builder_class(corpus.builder_name, corpus.description)
  return builder_class(data=data, audio=audio, data_dir=os.path.expanduser(data.tfds_dir),
                       file_format='array_record')


def stale_reason(builder, data: DataOptions) -> Optional[str]:
  """Why a built dataset no longer matches its source folder, or None when it does.

  Compares the file listing recorded at build time with the folder now. A build that recorded no
  listing (made before listings were recorded) and a source folder that cannot be listed any more
  are trusted, with a log line.
  """
  recorded = builder.info.metadata.get('source_files', None)
  folder = os.path.expanduser(data.dir)
  if recorded is None:
    logging.info('%s records no source listing (built by an older version), so changes to %s '
                 'cannot be detected; delete it to rebuild', builder.data_dir, folder)
    return None
  try:
    files, _ = list_source_files(data)
  except DataSourceError as e:
    logging.warning('%s; using the dataset prepared from it earlier, in %s', e, builder.data_dir)
    return None
  return listing_changes(recorded, source_listing(folder, files))


def prepare(data: DataOptions, audio: AudioOptions) -> _SpeechBuilder:
  """Builds the dataset if it is not there yet or its source changed; prints the summary then.

  Args:
    data: the data options.
    audio: the audio options.
  Returns:
    a prepared builder (`builder.as_data_source()` opens its splits).
  Raises:
    DataSourceError: the source folder is missing or empty, or none of its files can be read.
  """
  builder = make_builder(data, audio)
  if builder.is_built():
    reason = stale_reason(builder, data)
    if reason is None:
      return builder
    text = (f'{os.path.expanduser(data.dir)} changed since its dataset was built '
            f'({reason}): deleting the stale {builder.data_dir} and building it again')
    print(text, flush=True)  # once: a log record of it too showed it twice on the console
    shutil.rmtree(builder.data_dir)
    builder = make_builder(data, audio)
  # Listing and reading first raises folder errors before TFDS creates any directory.
  plan = builder.plan
  logging.info('Building %s into %s', builder.name, builder.data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  text = plan.summary_text()
  logging.info('%s', text)
  print(text, flush=True)
  # A fresh builder reads the info (splits, metadata) back from what was written.
  return make_builder(data, audio)
