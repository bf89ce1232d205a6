"""What a corpus is: a named way to list speech files, with speakers and the unseen-speaker split.

Each corpus lives in its own module of this package (fillets.py, ljspeech.py, folder.py) and is
registered by name in registry.py; `config.data.source` picks one. Reading, mels, splits and the
TFDS dataset are the same for every corpus (reading.py, splits.py, fingerprint.py, builders.py).
A corpus's functions take the typed `settings.DataOptions` (and `settings.AudioOptions`).
"""
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple


class DataSourceError(ValueError):
  """The source folder is missing, empty, in the wrong layout, or none of its files can be read."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
  """One audio file of a corpus before reading.

  Attributes:
    uid: utterance id, unique within the corpus.
    path: the audio file.
    speaker: speaker id.
    unseen: True for speakers kept out of training (they go to the 'unseen' split).
    mel_path: a stored mel paired with the audio (paired.py), read by the corpus's `read`; '' when
      the mel is computed from the audio.
  """
  uid: str
  path: str
  speaker: str
  unseen: bool = False
  mel_path: str = ''


def _no_values(data) -> Dict[str, Any]:
  del data  # a `settings.DataOptions`
  return {}


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A corpus: how to list its files, and what names its prepared dataset.

  Attributes:
    name: the `config.data.source` value that selects it.
    builder_name: the TFDS builder name; the prepared data go to
      <config.data.tfds_dir>/<builder_name>/<config name>/<version>/.
    description: one line saying what the corpus is (the TFDS builder's description).
    list_files: list_files(folder, data) -> (files sorted by id, {path: reason} of files the
      layout rules leave out); folder is `data.dir` with '~' expanded, data the
      `settings.DataOptions`. Raises
      `DataSourceError` naming the folder and what was expected when it is missing or empty.
    stored_values: stored_values(data) -> the corpus's own `DataOptions` settings that change which
      files are listed or how they are split, as plain JSON values. They join the prepared
      dataset's name hash (with the folder, the split and subset settings and the frontend), so
      changing one builds a new dataset. The default, none.
    read: read(file, data, audio) -> (audio [frames * hop] float32, mel [frames, n_mels]
      float32) for a corpus whose mels are stored beside the audio (paired.py); `file` has the
      `SourceFile` attributes path and mel_path. Raises `audio.AudioLoadError` with the path and the
      reason for a file the build should skip and count. None (the default): the audio is loaded
      and cut to whole hops, and the mel computed from it with the audio options' frontend
      (`settings.AudioOptions`).
  """
  name: str
  builder_name: str
  description: str
  list_files: Callable[[str, Any], Tuple[List[SourceFile], Dict[str, str]]]
  stored_values: Callable[[Any], Dict[str, Any]] = _no_values
  read: Optional[Callable[[Any, Any, Any], Tuple[Any, Any]]] = None
