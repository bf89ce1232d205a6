"""Any folder of audio files, searched recursively; the speaker is a directory above each file.

`config.data.dir` is the folder, `config.data.extensions` the file endings searched for,
`config.data.speaker_level` how many directories above a file its speaker id is, and
`config.data.unseen_speakers` the speakers kept out of training.
"""
import pathlib
from typing import List, Sequence

from wavegrad_jax.data.corpus import Corpus, DataSourceError, SourceFile


def list_folder_files(folder: str, extensions: Sequence[str], speaker_level: int = 1,
                      unseen_speakers: Sequence[str] = ()) -> List[SourceFile]:
  """Lists every audio file under `folder`, recursively.

  Args:
    folder: the corpus folder.
    extensions: file name endings without the dot, matched case-insensitively, e.g. ('wav',).
    speaker_level: the speaker id is the directory this many levels above the file (1: its parent,
      as in VCTK's p225/; 2: the grandparent, as in LibriTTS's <speaker>/<chapter>/); files too
      close to the root get the root folder's name.
    unseen_speakers: speaker ids kept out of training, written to 'unseen'.
  Returns:
    files sorted by id; the id is the path relative to `folder`, extension included.
  Raises:
    DataSourceError: the folder is missing or holds no file with one of `extensions`.
  """
  root = pathlib.Path(folder)
  wanted = {('.' + e.lower().lstrip('.')) for e in extensions}
  hint = (f'pass --config.data.dir=<a folder of {"/".join(sorted(wanted))} files> '
          '(searched recursively)')
  if not root.is_dir():
    raise DataSourceError(f'Audio folder {folder} does not exist; {hint}')
  paths = sorted(p for p in root.rglob('*') if p.suffix.lower() in wanted and p.is_file())
  if not paths:
    raise DataSourceError(f'Audio folder {folder} holds no {"/".join(sorted(wanted))} files; '
                          f'{hint}')
  unseen = set(unseen_speakers)
  files = []
  for path in paths:
    rel = path.relative_to(root)
    dirs = rel.parts[:-1]
    speaker = dirs[-speaker_level] if 0 < speaker_level <= len(dirs) else root.name
    files.append(SourceFile(rel.as_posix(), str(path), speaker, speaker in unseen))
  return files


def _list(folder, data):
  return list_folder_files(folder, data.extensions, int(data.speaker_level),
                           data.unseen_speakers), {}


def _stored_values(data):
  return {'unseen_speakers': sorted(str(s) for s in data.unseen_speakers),
          'speaker_level': int(data.speaker_level),
          'extensions': sorted(e.lower().lstrip('.') for e in data.extensions)}


CORPUS = Corpus(
    name='folder', builder_name='audio_folder',
    description='Any folder of wav/flac/ogg files, searched recursively.',
    list_files=_list, stored_values=_stored_values)
