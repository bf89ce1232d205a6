"""What every launcher shares: flag parsing with short errors, user errors without tracebacks.

  if __name__ == '__main__':
    cli.run(main)

instead of `app.run(main)`. Differences:

- A bad flag or config override is one line naming it: an unknown `--config.<path>` field names
  the closest field (difflib), a missing --config file says so, a value of the wrong type names
  the field and the value. Exit status 2.
- A user error raised by the launcher or the library (`USER_ERRORS`: `errors.UserError` and the
  library's input errors, `app.UsageError`) prints `error: <message>` without a traceback. Exit
  status 1. Anything else is a bug and keeps its traceback.
- At the default verbosity, libraries' log records (orbax, TFDS, JAX) are dropped and the
  project's own are kept; `--verbosity=0` (or any explicit --verbosity) shows everything.
"""
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging

from experiments import config_overrides
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax import errors
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.evaluation import perceptual
from wavegrad_jax.evaluation import schedule_search
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.inference import synthesize
from wavegrad_jax.data import corpus

FLAGS = flags.FLAGS

# Library errors whose messages already name the problem and the fix.
USER_ERRORS = (errors.UserError, app.UsageError, corpus.DataSourceError, schedules.ScheduleError,
               mel_conventions.MelConventionError, audio.AudioLoadError,
               synthesize.SynthesisInputError, schedule_search.SearchResumeError,
               perceptual.MissingExtraError)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_CODE = tuple(os.path.join(_REPO, d) + os.sep for d in ('wavegrad_jax', 'experiments'))


def fail(message, status=1):
  """Prints `error: message` to stderr and exits with `status` (no traceback)."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(status)


# ------------------------------------------------------------------------------ flag parsing

# The --config file and override checks are experiments/config_overrides.py.


def parse_flags(argv):
  """absl's flag parsing, with one-line messages (and exit status 2) for every mistake."""
  argv = config_overrides.with_default_config_files(argv)
  sys.argv[:] = argv  # ml_collections reads the overrides from sys.argv itself.
  message = config_overrides.check_config_overrides(argv)
  if message:
    fail(message, 2)
  try:
    return FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0], 2)
  except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    # ml_collections raises these (not flags.Error) for overrides it cannot apply.
    fail(f'cannot apply the command-line config: {type(e).__name__}: '
         f'{str(e).splitlines()[0] if str(e) else e!r}', 2)


# ---------------------------------------------------------------------------------- logging


class _OwnRecordsOnly(std_logging.Filter):
  """Keeps this project's log records (and CRITICAL ones); drops libraries' chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.CRITICAL or record.pathname.startswith(_OWN_CODE)


def quiet_libraries():
  """Drops libraries' log records unless --verbosity was given (see the module docstring)."""
  if 'verbosity' in FLAGS and FLAGS['verbosity'].present:
    return
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _OwnRecordsOnly) for f in handler.filters):
    handler.addFilter(_OwnRecordsOnly())


# ------------------------------------------------------------------------------------- running


def guarded(main):
  """main(argv), with user errors printed as one `error:` line and exit status 1."""
  def wrapper(argv):
    quiet_libraries()
    try:
      return main(argv)
    except USER_ERRORS as e:
      fail(str(e) or type(e).__name__, 2 if isinstance(e, app.UsageError) else 1)
  return wrapper


def run(main):
  """`app.run(main)` with the parsing, error and logging behaviour of this module."""
  app.run(guarded(main), flags_parser=parse_flags)
