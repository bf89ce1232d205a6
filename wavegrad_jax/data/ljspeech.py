"""An LJSpeech-1.1 folder: metadata.csv (`id|text|normalized`, no header) and wavs/, one speaker.

`config.data.dir` is the LJSpeech-1.1 folder; `config.data.unseen_speakers=('ljspeech',)` would
send every file to 'unseen'.
"""
import collections
import pathlib
from typing import List, Sequence

from wavegrad_jax.data.corpus import Corpus, DataSourceError, SourceFile


def list_ljspeech_files(folder: str, unseen_speakers: Sequence[str] = ()) -> List[SourceFile]:
  """Lists an LJSpeech-1.1 folder: metadata.csv (`id|text|normalized`, no header) and wavs/.

  Quotes in metadata.csv are literal text, so lines are split on '|' rather than parsed as CSV.
  Ids listed whose wav is missing are kept: reading them fails and is reported like any bad file.

  Args:
    folder: the LJSpeech-1.1 folder.
    unseen_speakers: speaker ids for 'unseen'; LJSpeech has one speaker, 'ljspeech'.
  Returns:
    files sorted by id, all with speaker 'ljspeech'.
  Raises:
    DataSourceError: the folder or its metadata.csv is missing, or metadata.csv lists no ids.
  """
  hint = 'pass --config.data.dir=<path to LJSpeech-1.1>'
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise DataSourceError(f'LJSpeech folder {folder} does not exist; {hint}')
  metadata = root / 'metadata.csv'
  if not metadata.is_file():
    raise DataSourceError(f'LJSpeech folder {folder} has no metadata.csv; {hint}')
  uids = []
  for line in metadata.read_text(encoding='utf-8').splitlines():
    uid = line.split('|', 1)[0].strip()
    if uid:
      uids.append(uid)
  if not uids:
    raise DataSourceError(f'LJSpeech metadata {metadata} lists no utterances; {hint}')
  if len(set(uids)) != len(uids):
    dupes = sorted(u for u, n in collections.Counter(uids).items() if n > 1)
    raise DataSourceError(f'LJSpeech metadata {metadata} repeats ids {dupes[:10]}')
  unseen = 'ljspeech' in set(unseen_speakers)
  return [SourceFile(u, str(root / 'wavs' / f'{u}.wav'), 'ljspeech', unseen) for u in sorted(uids)]


CORPUS = Corpus(
    name='ljspeech', builder_name='ljspeech_folder',
    description='An LJSpeech-1.1 folder on disk (metadata.csv + wavs/), read without TensorFlow.',
    list_files=lambda folder, data: (list_ljspeech_files(folder, data.unseen_speakers), {}),
    stored_values=lambda data: {'unseen_speakers': sorted(str(s) for s in data.unseen_speakers)})
