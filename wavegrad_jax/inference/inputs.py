"""Collecting the files to vocode, and checking the output folder before anything is made.

`collect_inputs` walks a file or folder for audio and .npy mels (audio below the output folder is
an earlier run's output, not an input) and names each output; `check_output_dir` checks the output
folder can be written, creating nothing.
"""
import os
import tempfile

from wavegrad_jax import errors
from wavegrad_jax.inference.mel_input import (AUDIO_EXTENSIONS, MEL_EXTENSIONS,
                                              SynthesisInputError, is_mel_file)


class SynthesisOutputError(SynthesisInputError, errors.OutputPathError):
  """The output folder cannot be written, or holds wavs vocoded with other settings."""


def _is_under(path, folder):
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def collect_inputs(path, exclude=None, mels_only=False):
  """The files to vocode under `path`: itself, or every audio / .npy file below a folder.

  Args:
    path: a file or a folder.
    exclude: the output folder, if any: audio files below it are outputs (of this or an earlier
      run), not inputs, and are left out.
    mels_only: take only the .npy mels (e.g. of a folder of mels beside their audio).
  Returns:
    sorted list of (input path, output name relative to the output folder, ending in .wav).
  Raises:
    SynthesisInputError: missing path, unsupported extension, empty folder, or two inputs that
      would write the same output (e.g. a.wav and a.npy).
  """
  path = os.fspath(path)
  supported = MEL_EXTENSIONS if mels_only else AUDIO_EXTENSIONS + MEL_EXTENSIONS
  if os.path.isfile(path):
    if not path.lower().endswith(supported):
      raise SynthesisInputError(f'{path}: unsupported extension; give one of {supported}')
    pairs = [(path, os.path.splitext(os.path.basename(path))[0] + '.wav')]
  elif os.path.isdir(path):
    pairs = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      for name in sorted(files):
        full = os.path.join(root, name)
        if not name.lower().endswith(supported):
          continue
        if exclude and not is_mel_file(name) and _is_under(full, exclude):
          continue
        pairs.append((full, os.path.splitext(os.path.relpath(full, path))[0] + '.wav'))
    if not pairs:
      raise SynthesisInputError(f'{path}: no {"/".join(supported)} files in this folder')
  else:
    raise SynthesisInputError(f'{path}: no such file or folder')
  seen = {}
  for src, out in pairs:
    if out in seen:
      raise SynthesisInputError(f'{seen[out]} and {src} would both be written to {out}; '
                                'rename one or vocode them separately')
    seen[out] = src
  return pairs


def check_output_dir(output_dir):
  """Checks that `output_dir` is, or can be made, a writable folder; creates nothing.

  Raises:
    SynthesisOutputError: it is a file, lies below a file, or its nearest existing folder cannot
      be written (a temporary file is tried there and removed).
  """
  path = os.path.abspath(os.fspath(output_dir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise SynthesisOutputError(f'--output_dir {output_dir} is a file, not a folder; give a folder '
                               'for the wavs')
  probe = path
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise SynthesisOutputError(f'--output_dir {output_dir} cannot be created: {probe} is a file, '
                               'not a folder')
  try:
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as e:
    raise SynthesisOutputError(f'--output_dir {output_dir}: cannot write into {probe} '
                               f'({e.strerror or e}); choose a writable folder') from e
