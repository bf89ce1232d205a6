"""Errors a user can fix, and the output-location checks that raise them before any work starts.

A `UserError` is a problem with what was asked (a config value, a path, a flag, a workdir that
holds another run), not a bug: the launchers (experiments/cli.py) print its message alone, without
a traceback, and exit non-zero. The library's older input errors (DataSourceError, ScheduleError,
MelConventionError, AudioLoadError, SynthesisInputError, SearchResumeError) are treated the same.
"""
import os
import tempfile


class UserError(Exception):
  """An error in what the user asked for; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
  """A config value a run cannot use (names the field and what it accepts)."""


class OutputPathError(UserError, ValueError):
  """An output location that is a file where a folder is needed (or the reverse), or unwritable."""


class ResumeMismatchError(UserError, ValueError):
  """A workdir whose checkpoints were made under settings that shape the saved state differently."""


class CheckpointSaveError(UserError, RuntimeError):
  """Writing a checkpoint failed (e.g. no space left): the run stops at once instead of going on."""


def _nearest_existing(path):
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  while not os.path.lexists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def _probe_writable(directory):
  """None when a file can be created in `directory` (nothing is left behind), else the reason."""
  try:
    # O_TMPFILE where the system has it: an unnamed file that vanishes on close.
    with tempfile.TemporaryFile(dir=directory):
      pass
  except OSError as e:
    return e.strerror or str(e)
  return None


def check_output_dir(path, what):
  """Raises OutputPathError unless `path` is, or can be created as, a writable folder.

  Creates nothing: a missing folder is checked through its nearest existing parent.

  Args:
    path: the folder a command will write into.
    what: how the user named it, for the message (e.g. '--workdir', '--output_dir').
  """
  _check_writable(path, what, want_dir=True)


def check_output_file(path, what):
  """Raises OutputPathError unless a file can be written at `path` (its folder may not exist yet).

  Args:
    path: the file a command will write.
    what: how the user named it, for the message (e.g. '--output').
  """
  _check_writable(path, what, want_dir=False)


def _check_writable(path, what, want_dir):
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  what = f'{what}={path}' if what.startswith('-') else f'{what} {path}'
  if os.path.isdir(path) and not want_dir:
    raise OutputPathError(f'{what} is a folder; give a file path')
  folder = path if want_dir else os.path.dirname(path)
  existing = _nearest_existing(folder)
  if not os.path.isdir(existing):
    if existing == path:
      raise OutputPathError(f'{what} is a file, not a folder; give a folder path')
    raise OutputPathError(f'{what} cannot be created: {existing} is a file')
  reason = _probe_writable(existing)
  if reason is not None:
    where = '' if existing == path else f' (its nearest existing folder {existing})'
    raise OutputPathError(f'{what}{where} is not writable: {reason}; give a writable '
                          'location')
