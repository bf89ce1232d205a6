"""Which listed file goes to which split: 'train', 'heldout' and 'unseen', and the build plan.

'heldout' is a deterministic `heldout_fraction` of the training speakers' files, chosen by a hash
of the utterance id (the same on every machine), topped up to `min_heldout_utterances` for small
corpora; 'unseen' holds the speakers never trained on (the corpus marks them). `make_plan` reads
every listed file once and assigns the readable ones; unreadable files are logged and counted.
"""
import concurrent.futures
import dataclasses
import hashlib
import os
from typing import Any, Dict, List, Sequence, Tuple

from absl import logging

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.data import fingerprint
from wavegrad_jax.data import reading
from wavegrad_jax.data import registry
from wavegrad_jax.data.corpus import DataSourceError, SourceFile
from wavegrad_jax.data.settings import AudioOptions, DataOptions

SPLITS = ('train', 'heldout', 'unseen')


@dataclasses.dataclass(frozen=True)
class Utterance:
  """A readable file assigned to a split, with its trimmed length in frames (x hop = samples)."""
  uid: str
  path: str
  speaker: str
  split: str
  frames: int
  mel_path: str = ''  # a stored mel (paired corpora), '' when computed from the audio.


def list_source_files(data: DataOptions) -> Tuple[List[SourceFile], Dict[str, str]]:
  """Lists the files of the source `data.source` in `data.dir`.

  Args:
    data: the data options.
  Returns:
    (files sorted by id, {path: reason} of files the layout rules leave out).
  Raises:
    DataSourceError: the folder is missing or empty, or the source is unknown.
  """
  corpus = registry.get_corpus(data.source)
  return corpus.list_files(os.path.expanduser(data.dir), data)


def _unit_hash(salt: str, uid: str) -> float:
  """A stable pseudo-random number in [0, 1) for an id (Python's hash() varies per process)."""
  digest = hashlib.sha256(f'{salt}:{uid}'.encode()).digest()
  return int.from_bytes(digest[:8], 'big') / 2.0**64


def is_heldout(uid: str, heldout_fraction: float) -> bool:
  """Whether a training speaker's utterance `uid` belongs to 'heldout' (same on every machine)."""
  return _unit_hash('heldout', uid) < heldout_fraction


def apply_min_heldout(utterances: Dict[str, List[Utterance]], data: DataOptions) -> int:
  """Moves training utterances into 'heldout' until it holds `data.min_heldout_utterances`.

  Only when `heldout_fraction` > 0 picked fewer: those with the lowest held-out hash move, so the
  held-out set is a superset of the fraction's pick and the same on every machine. A corpus whose
  fraction already picks enough (the embedded one) keeps its split.

  Args:
    utterances: per split, the readable utterances sorted by id (changed in place).
    data: the data options (min_heldout_utterances None: no minimum).
  Returns:
    how many utterances moved (0 when the fraction's pick was enough).
  Raises:
    DataSourceError: the training speakers' utterances cannot spare the minimum and leave one
      for training.
  """
  minimum = int(data.min_heldout_utterances or 0)
  fraction = float(data.heldout_fraction)
  missing = minimum - len(utterances['heldout'])
  if fraction <= 0 or missing <= 0:
    return 0
  if len(utterances['train']) <= missing:
    total = len(utterances['train']) + len(utterances['heldout'])
    raise DataSourceError(
        f"the {data.source} corpus in {os.path.expanduser(data.dir)} has "
        f'{total} readable training-speaker utterances: too few to hold out '
        f'data.min_heldout_utterances={minimum} and train on the rest; add files, lower '
        'config.data.min_heldout_utterances, or set config.data.heldout_fraction=0 to train '
        'without a held-out set (no evaluation, no samples, no best checkpoint)')
  moved = sorted(utterances['train'], key=lambda u: _unit_hash('heldout', u.uid))[:missing]
  moved_ids = {u.uid for u in moved}
  utterances['train'] = [u for u in utterances['train'] if u.uid not in moved_ids]
  utterances['heldout'] = sorted(utterances['heldout'] + [dataclasses.replace(u, split='heldout')
                                                          for u in moved], key=lambda u: u.uid)
  return len(moved)


def subset_files(files: Sequence[SourceFile], max_files: int) -> List[SourceFile]:
  """At most `max_files` of the training-speaker files and as many unseen ones (0: all).

  The subset is the files with the smallest hash of their id (salted apart from the held-out
  hash), so it spreads across levels and speakers instead of taking the first folder.

  Args:
    files: files sorted by id.
    max_files: cap per pool (training speakers, unseen speakers); 0 keeps everything.
  Returns:
    the kept files, sorted by id.
  """
  if max_files <= 0:
    return list(files)
  kept = []
  for unseen in (False, True):
    pool = [f for f in files if f.unseen == unseen]
    kept += sorted(pool, key=lambda f: _unit_hash('subset', f.uid))[:max_files]
  return sorted(kept, key=lambda f: f.uid)


@dataclasses.dataclass
class BuildPlan:
  """What a build will write, decided by reading every listed file once.

  Attributes:
    folder: the source folder.
    utterances: per split, the readable utterances sorted by id.
    summary: JSON-able counts and the paths of skipped files.
    source_files: `fingerprint.source_listing` of every listed file, taken before any was read.
  """
  folder: str
  utterances: Dict[str, List[Utterance]]
  summary: Dict[str, Any]
  source_files: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

  def summary_text(self) -> str:
    """One paragraph for people: files read, skipped (with paths), and what each split holds."""
    s = self.summary
    unreadable, short, left_out = s['unreadable'], s['too_short'], s['left_out']
    text = (f"{s['source']} corpus {self.folder}: {s['files_read']} files read, "
            f'{len(unreadable)} skipped as unreadable')
    text += f': {sorted(unreadable)}' if unreadable else ''
    if short:
      text += f", {len(short)} skipped as shorter than one hop ({s['hop_length']} samples): {short}"
    if left_out:
      examples = sorted(left_out)[:3]
      text += (f', {len(left_out)} left out by the layout rules (e.g. {examples}: '
               f'{left_out[examples[0]]})')
    splits = ', '.join(f"{k} {s['utterances'][k]} utterances ({s['seconds'][k] / 60:.1f} min)"
                       for k in SPLITS)
    if s.get('heldout_topped_up'):
      splits += (f" ({s['heldout_topped_up']} of the held-out utterances are there because "
                 'data.heldout_fraction picked fewer than data.min_heldout_utterances)')
    return f'{text}. {splits}.'


def make_plan(data: DataOptions, audio: AudioOptions) -> BuildPlan:
  """Lists the source, reads every file once, and assigns the readable ones to splits.

  Unreadable files are logged (absl warning, by path) and counted, never fatal on their own.

  Args:
    data: the data options.
    audio: the audio options.
  Returns:
    the plan.
  Raises:
    DataSourceError: the folder is missing or empty, no file could be read, or no readable file
      is left for 'train'.
  """
  folder = os.path.expanduser(data.dir)
  listed, left_out = list_source_files(data)
  listing = fingerprint.source_listing(folder, listed)  # before reading: a change rebuilds
  files = subset_files(listed, int(data.max_files))
  hop = int(audio.hop_length)
  unreadable, too_short = {}, []
  utterances = {k: [] for k in SPLITS}

  def frames_of(f):
    try:
      return reading.read_utterance(f, data, audio)[0].shape[0] // hop
    except audio_lib.AudioLoadError as e:
      return e
    except Exception as e:  # pylint: disable=broad-except
      # A decoder failing some other way is still one bad file, not a reason to stop the build.
      return audio_lib.AudioLoadError(f'{f.path}: {type(e).__name__}: {e}')

  with concurrent.futures.ThreadPoolExecutor(max(1, int(data.build_threads))) as pool:
    for f, frames in zip(files, pool.map(frames_of, files)):
      if isinstance(frames, Exception):
        logging.warning('Skipping unreadable audio file %s: %s', f.path, frames)
        unreadable[f.path] = str(frames)
      elif frames < 1:
        logging.warning('Skipping %s: shorter than one hop (%d samples)', f.path, hop)
        too_short.append(f.path)
      else:
        split = ('unseen' if f.unseen else
                 'heldout' if is_heldout(f.uid, float(data.heldout_fraction)) else 'train')
        utterances[split].append(Utterance(f.uid, f.path, f.speaker, split, frames, f.mel_path))

  read = len(files) - len(unreadable)
  moved = apply_min_heldout(utterances, data) if read else 0
  if read == 0:
    raise DataSourceError(
        f'None of the {len(files)} audio files of the {data.source} corpus in {folder} could '
        f'be read (e.g. {next(iter(unreadable.values()))}); expected readable '
        'wav/flac/ogg audio files: check config.data.dir and config.data.source')
  if not utterances['train']:
    raise DataSourceError(
        f'The {data.source} corpus in {folder} leaves no utterance for training '
        f'({read} files read, {len(too_short)} too short, heldout_fraction '
        f'{data.heldout_fraction}, unseen speakers {list(data.unseen_speakers)}); '
        'lower config.data.heldout_fraction or list fewer config.data.unseen_speakers')
  sample_rate = int(audio.sample_rate)
  summary = {
      'source': data.source,
      'folder': folder,
      'hop_length': hop,
      'files_listed': len(listed),
      'files_selected': len(files),
      'files_read': read,
      'unreadable': unreadable,
      'too_short': too_short,
      'left_out': left_out,
      'heldout_topped_up': moved,
      'utterances': {k: len(v) for k, v in utterances.items()},
      'seconds': {k: sum(u.frames for u in v) * hop / sample_rate for k, v in utterances.items()},
  }
  return BuildPlan(folder, utterances, summary, listing)
