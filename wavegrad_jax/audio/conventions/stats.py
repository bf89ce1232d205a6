"""Per-band mean-variance statistics of the 'meanvar' normalisation: reading, digesting, writing.

One job: the statistics files. Reads ParallelWaveGAN's stats.npy ([2, n_mels] mean and scale, as
its compute_statistics.py / StandardScaler write them) and ESPnet's GlobalMVN .npz (count, sum,
sum_square), cached by path, mtime and size; `stats_digest` keys a prepared dataset on the file's
bytes.
"""
import functools
import hashlib
import os

import numpy as np

from wavegrad_jax.audio.conventions.recipes import MelConventionError



def _stats_cache_key(path):
  path = os.path.abspath(os.path.expanduser(path))
  try:
    st = os.stat(path)
  except OSError as e:
    raise MelConventionError(
        f"{path}: cannot read audio.stats_file ({e.strerror or e}); it holds the per-band mean "
        "and scale of audio.normalize='meanvar' (mel_conventions.save_meanvar_stats writes "
        'one)') from e
  return path, st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _load_stats_cached(path, mtime_ns, size):
  del mtime_ns, size  # cache key only: a rewritten file is read again
  fail = lambda problem: MelConventionError(f'{path}: {problem}')
  lower = path.lower()
  if lower.endswith(('.h5', '.hdf5')):
    raise fail('HDF5 statistics need h5py, which this project does not use; convert them once: '
               "python -c \"import h5py, numpy as np; f = h5py.File('stats.h5', 'r'); "
               "np.save('stats.npy', np.stack([f['mean'][()], f['scale'][()]]))\"")
  try:
    with open(path, 'rb') as f:
      magic = f.read(6)
  except OSError as e:
    raise fail(f'cannot read the statistics file ({e.strerror or e})') from e
  if not (magic.startswith(b'\x93NUMPY') or magic.startswith(b'PK')):
    # np.load would take it for pickled data and say so, which misleads.
    raise fail('not a .npy / .npz statistics file (no NumPy or zip header: a text file or '
               "another format); give ParallelWaveGAN's stats.npy [2, n_mels] or ESPnet's "
               'GlobalMVN .npz')
  try:
    data = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise fail(f'not a readable .npy / .npz file ({e})') from e
  if isinstance(data, np.lib.npyio.NpzFile):
    with data:
      keys = set(data.files)
      if {'mean', 'scale'} <= keys:
        mean, scale = data['mean'], data['scale']
      elif {'count', 'sum', 'sum_square'} <= keys:  # ESPnet GlobalMVN
        count = float(np.asarray(data['count']).reshape(-1)[0])
        mean = np.asarray(data['sum'], np.float64) / count
        var = np.asarray(data['sum_square'], np.float64) / count - mean * mean
        scale = np.sqrt(np.maximum(var, 1e-20))
      else:
        raise fail(f"an .npz of statistics needs arrays 'mean' and 'scale', or ESPnet's 'count', "
                   f"'sum' and 'sum_square'; it has {sorted(keys)}")
  else:
    if data.ndim != 2 or data.shape[0] != 2:
      raise fail(f'a .npy of statistics must be [2, n_mels] (row 0 the mean, row 1 the scale, as '
                 f'ParallelWaveGAN saves them), got shape {data.shape}')
    mean, scale = data[0], data[1]
  mean = np.asarray(mean, np.float64).reshape(-1)
  scale = np.asarray(scale, np.float64).reshape(-1)
  if mean.shape != scale.shape:
    raise fail(f'mean {mean.shape} and scale {scale.shape} differ in shape')
  if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
    raise fail('statistics must be finite with every scale > 0')
  mean.setflags(write=False)
  scale.setflags(write=False)
  return mean, scale


def load_meanvar_stats(path, n_mels=None):
  """Per-band mean and scale of a statistics file (see the module docstring for the formats).

  Args:
    path: .npy [2, n_mels] or .npz.
    n_mels: if given, the band count the statistics must have.
  Returns:
    (mean [n_mels], scale [n_mels]) float64, read-only, in the convention's log units.
  Raises:
    MelConventionError: missing or unreadable file, bad shapes or values.
  """
  mean, scale = _load_stats_cached(*_stats_cache_key(path))
  if n_mels is not None and mean.shape[0] != n_mels:
    raise MelConventionError(f'{path}: statistics for {mean.shape[0]} mel bands, but the frontend '
                             f'has n_mels={n_mels}')
  return mean, scale


def stats_digest(path):
  """sha256 of a statistics file's bytes (part of a prepared dataset's key)."""
  with open(_stats_cache_key(path)[0], 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def meanvar_stats(mels):
  """Per-band mean and scale over every frame, as ParallelWaveGAN's StandardScaler computes them.

  Args:
    mels: iterable of [frames, n_mels] unnormalised mels (the convention's log values).
  Returns:
    [2, n_mels] float64: row 0 the mean, row 1 the population standard deviation (1 where 0).
  """
  count, total, squares = 0, 0.0, 0.0
  for mel in mels:
    mel = np.asarray(mel, np.float64)
    count += mel.shape[0]
    total = total + mel.sum(axis=0)
    squares = squares + np.square(mel).sum(axis=0)
  if not count:
    raise ValueError('no frames to compute statistics from')
  mean = total / count
  std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
  return np.stack([mean, np.where(std > 0, std, 1.0)])


def save_meanvar_stats(path, stats):
  """Writes [2, n_mels] statistics as ParallelWaveGAN's stats.npy (row 0 mean, row 1 scale)."""
  stats = np.asarray(stats, np.float64)
  if stats.ndim != 2 or stats.shape[0] != 2:
    raise ValueError(f'statistics must be [2, n_mels], got {stats.shape}')
  np.save(path, stats)
