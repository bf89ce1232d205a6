"""What identifies a prepared dataset: the settings that shape its arrays, and its source files.

A prepared dataset's TFDS config name spells out the audio values that shape the stored arrays and
ends in a hash of every value that affects them (`stored_data_values`), so changing one builds a
new dataset beside the old one. The dataset also records each source file's size and modification
time (`source_listing`); `listing_changes` says what differs when the folder changed. Both are
recorded on disk: their output must not change for unchanged settings, or every prepared dataset
would be rebuilt (see builders.py).
"""
import hashlib
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.data import registry
from wavegrad_jax.data.corpus import SourceFile
from wavegrad_jax.data.settings import AudioOptions, DataOptions

# Bump when the stored layout or its computation changes: it is part of every config's hash.
FORMAT_VERSION = '1.0.0'


def stored_audio_values(audio: AudioOptions) -> Dict[str, Any]:
  """The audio values that change the stored arrays, as plain JSON-able Python values.

  Args:
    audio: the audio options.
  Returns:
    dict of sample_rate (Hz), n_fft, win_length, hop_length (samples), n_mels, fmin, fmax (Hz, as
    declared: None for Nyquist), window, power, log_floor, pad_mode and peak_normalize, plus the
    mel convention's fields that differ from the default's (`mel_conventions.stored_values`: none
    for the default frontend).
  """
  fe = audio.frontend
  return mel_conventions.stored_values(fe) | {
      'sample_rate': int(fe.sample_rate),
      'n_fft': int(fe.n_fft),
      'win_length': int(fe.win_length),
      'hop_length': int(fe.hop_length),
      'n_mels': int(fe.n_mels),
      'fmin': float(fe.fmin),
      'fmax': audio.fmax,
      'window': fe.window if isinstance(fe.window, str) else list(fe.window),
      'power': float(fe.power),
      'log_floor': float(fe.log_floor),
      'pad_mode': str(fe.pad_mode),
      'peak_normalize': float(audio.peak_normalize),
  }


def stored_data_values(data: DataOptions, audio: AudioOptions) -> Dict[str, Any]:
  """Every setting that affects the stored dataset (and nothing that does not).

  Args:
    data: the data options.
    audio: the audio options.
  Returns:
    dict with the format version, the source, its folder (absolute), the split and subset settings,
    the corpus's own `stored_values` and `stored_audio_values`.
  """
  values = {
      'format': FORMAT_VERSION,
      'source': data.source,
      'dir': os.path.abspath(os.path.expanduser(data.dir)),
      'heldout_fraction': float(data.heldout_fraction),
      'max_files': int(data.max_files),
      'audio': stored_audio_values(audio),
  }
  if data.min_heldout_utterances is not None:
    # Configs recorded before the field existed keep their hash, and so their prepared dataset.
    values['min_heldout_utterances'] = int(data.min_heldout_utterances)
  values.update(registry.get_corpus(data.source).stored_values(data))
  return values


def _name_part(value) -> str:
  text = f'{value:g}' if isinstance(value, float) else str(value)
  return re.sub(r'[^a-zA-Z0-9.+-]+', '', text)


def config_name(values: Dict[str, Any]) -> str:
  """A readable, unique TFDS config name for `stored_data_values` output.

  Args:
    values: the dict `stored_data_values` returns.
  Returns:
    e.g. 'sr22050-hop256-fft1024-win1024-hann-mel80-f0-11025-pow1-floor1e-05-<10 hex digits>'; the
    hash covers every value, including those not spelled out.
  """
  a = values['audio']
  digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
  fmax = 'nyq' if a['fmax'] is None else _name_part(a['fmax'])
  parts = [f"sr{a['sample_rate']}", f"hop{a['hop_length']}", f"fft{a['n_fft']}",
           f"win{a['win_length']}", _name_part(a['window']), f"mel{a['n_mels']}",
           f"f{_name_part(a['fmin'])}", fmax, f"pow{_name_part(a['power'])}",
           f"floor{_name_part(a['log_floor'])}", digest]
  return '-'.join(parts)


def source_listing(folder: str, files: Sequence[SourceFile]) -> Dict[str, List[int]]:
  """{path relative to `folder`: [size in bytes, modification time in ns]} of listed files.

  A listed file that cannot be stat'ed (LJSpeech ids without a wav) is [-1, 0]. Cheap: one stat
  per file, about 0.1 s for LJSpeech's 13,100 files.
  """
  out = {}
  for f in files:
    try:
      st = os.stat(f.path)
      out[os.path.relpath(f.path, folder)] = [int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
      out[os.path.relpath(f.path, folder)] = [-1, 0]
  return out


def listing_changes(recorded: Dict[str, Any], current: Dict[str, Any], examples: int = 3
                    ) -> Optional[str]:
  """What differs between two `source_listing`s, e.g. '1 added (a.wav), 2 changed (b.wav, c.wav)'.

  Returns:
    None when they are equal.
  """
  added = sorted(set(current) - set(recorded))
  removed = sorted(set(recorded) - set(current))
  changed = sorted(k for k in set(current) & set(recorded) if list(current[k]) != list(recorded[k]))
  parts = []
  for names, label in ((added, 'added'), (removed, 'removed'), (changed, 'changed')):
    if names:
      more = ', ...' if len(names) > examples else ''
      parts.append(f'{len(names)} {label} ({", ".join(names[:examples])}{more})')
  return ', '.join(parts) or None
