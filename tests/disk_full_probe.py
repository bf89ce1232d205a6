"""experiments.main with a full disk, for tests: training fails the ways a full disk makes it fail.

Run through tests/launcher_driver.py with experiments.main's flags plus --probe_failure=<kind>:
'config' (a rerun: config.json cannot be written), 'orbax' (a checkpoint write failed in the
background, then closing its manager raised "Event loop is closed" while handling that), 'sample'
(a sample wav failed with libsndfile's errno-less "System error" on a filesystem with no space
left), 'bug' (an error that is not a write failure: its traceback is kept).
"""
import errno
import os

from absl import flags
import soundfile

from experiments import main as main_launcher
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import trainer as train

_FAILURE = flags.DEFINE_enum('probe_failure', 'config', ['config', 'orbax', 'sample', 'bug'],
                             'How the disk-full run fails.')


def _fail(config, workdir, start_afresh=False):
  """Stands in for train.train_and_evaluate: fails as a full disk makes it."""
  del config, start_afresh
  kind = _FAILURE.value
  if kind == 'config':
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                  os.path.join(workdir, checkpoints.CONFIG_FILE))
  if kind == 'orbax':
    try:
      raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "x/_sharding": Failed to '
                       "write 41332 bytes: No space left on device [os_error_code='28']")
    except ValueError:
      raise RuntimeError('Event loop is closed')  # pylint: disable=raise-missing-from
  if kind == 'sample':
    checkpoints._free_bytes = lambda path: 0  # pylint: disable=protected-access
    raise soundfile.LibsndfileError(2, prefix=f"Error opening '{workdir}/samples/a.wav': ")
  raise KeyError('a bug, not a full disk')


def main(argv):
  train.train_and_evaluate = _fail
  return main_launcher.main(argv)
