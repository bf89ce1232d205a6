"""The embedded corpus: Fish Fillets' Czech voice acting (Debian package fillets-ng-data-cs).

`config.data.dir` is the package's `sound` folder (`<level>/cs/*.ogg`). The two fish (files named
`^[a-z0-9]+-[mv]-`, 'm' male, 'v' female) give 'train' and 'heldout'; the other characters give
'unseen' (files with an 'm' or 'v' name part outside that pattern may be fish too and are left
out). Building all 1665 files (94 min) takes about 20 s on 2 idle CPU cores and 0.6 GB of disk.
"""
import pathlib
import re
from typing import Dict, List, Tuple

from wavegrad_jax.data.corpus import Corpus, DataSourceError, SourceFile

_FILLETS_FISH = re.compile(r'^[a-z0-9]+-[mv]-')
_FILLETS_FISH_SPEAKERS = {'m': 'fish_m', 'v': 'fish_v'}


def list_fillets_files(folder: str) -> Tuple[List[SourceFile], Dict[str, str]]:
  """Lists the Fish Fillets Czech speech files (`<level>/cs/*.ogg`) under the `sound` folder.

  Files whose names mark another character go to 'unseen' with a speaker id made of the level and
  the name's character prefix. Files that carry an 'm' or 'v' name part outside the fish pattern
  (e.g. 'hanoi/cs/m-bude.ogg', 'fdto/cs/agenti-m.ogg') are probably the fish speaking in other
  naming schemes, so they are left out rather than risk fish voices in 'unseen'.

  Args:
    folder: the package's `sound` folder, e.g. /usr/share/games/fillets-ng/sound.
  Returns:
    (files sorted by id, {path: reason} of files left out).
  Raises:
    DataSourceError: the folder is missing or holds no `*/cs/*.ogg`.
  """
  root = pathlib.Path(folder)
  hint = ('install the Debian package fillets-ng-data-cs (apt-get install fillets-ng-data-cs) or '
          'pass --config.data.dir=<its fillets-ng/sound folder>')
  if not root.is_dir():
    raise DataSourceError(f'Fillets sound folder {folder} does not exist; {hint}')
  paths = sorted(root.glob('*/cs/*.ogg'))
  if not paths:
    raise DataSourceError(f'Fillets sound folder {folder} has no <level>/cs/*.ogg files; {hint}')
  files, left_out = [], {}
  for path in paths:
    level, stem = path.parent.parent.name, path.stem
    uid = f'{level}/{stem}'
    fish = _FILLETS_FISH.match(stem)
    if fish:
      speaker = _FILLETS_FISH_SPEAKERS[stem.split('-')[1]]
      files.append(SourceFile(uid, str(path), speaker, unseen=False))
      continue
    tokens = stem.split('-')
    if {'m', 'v'} & set(tokens[:-1] + tokens[1:]):
      left_out[str(path)] = 'may be a fish voice outside the fish naming pattern'
      continue
    character = '-'.join(tokens[:-1]) if len(tokens) > 1 else re.sub(r'[0-9]+$', '', stem)
    files.append(SourceFile(uid, str(path), f'{level}/{character or stem}', unseen=True))
  return files, left_out


CORPUS = Corpus(
    name='fillets', builder_name='fillets_speech',
    description='Fish Fillets Czech voice acting (Debian fillets-ng-data-cs): two fish + other '
                'characters.',
    list_files=lambda folder, data: list_fillets_files(folder))
