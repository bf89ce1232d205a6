r"""Writes a release of a run: one checkpoint's EMA weights in a folder shaped like a workdir.

  python -m experiments.release --workdir=runs/frame_small_gl_gan --step= --schedule=1 \
      --sampler=euler_gl --output_dir=pretrained/frame_small_gl

Every inference launcher takes the folder as --workdir (synthesize, evaluate, compare_samplers),
vocoding with --schedule by default; it holds no optimiser state (wavegrad_jax/training/release.py).
"""
from absl import app
from absl import flags

from experiments import cli
from experiments.configs import common
from wavegrad_jax import errors
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import release

_WORKDIR = flags.DEFINE_string('workdir', None, 'The training run.')
_STEP = flags.DEFINE_string('step', 'best', "'best', '' (the latest) or a step number.")
_SCHEDULE = flags.DEFINE_string('schedule', None, 'The grid the release vocodes with by default '
                                '(default: the run\'s sampling.schedule).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', None, 'The release folder.')
_NOTE = flags.DEFINE_string('note', '', 'A line recorded in RELEASE.json.')
_SAMPLER = flags.DEFINE_string('sampler', '', 'A sampler preset that becomes the release\'s '
                               'default sampler (e.g. euler_gl); default: the run\'s.')
flags.mark_flags_as_required(['workdir', 'output_dir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    saved = checkpoints.load_config(_WORKDIR.value)
  except FileNotFoundError as e:
    raise errors.UserError(f'--workdir={_WORKDIR.value}: {e}') from None
  schedule = _SCHEDULE.value or saved.sampling.schedule
  try:
    processes.parse_grid_from_config(saved, schedule)
    step = checkpoints.parse_step(_STEP.value)
    if _SAMPLER.value:
      sampling.check_preset(_SAMPLER.value, processes.process_name_from_config(saved))
  except ValueError as e:
    raise errors.ConfigError(f'--schedule={schedule} / --step={_STEP.value} / --sampler='
                             f'{_SAMPLER.value}: {e}') from None
  info = release.write_release(_WORKDIR.value, step, _OUTPUT_DIR.value, schedule, _NOTE.value,
                               sampler=_SAMPLER.value or None,
                               defaults=common.get_common_config())
  print(f"released step {info['source_step']} of {_WORKDIR.value} ({info['model']} under "
        f"{info['process']!r}, {info['parameters']:,} parameters, schedule {schedule!r}) to "
        f'{_OUTPUT_DIR.value} ({release.folder_bytes(_OUTPUT_DIR.value) / 1e6:.1f} MB)')


if __name__ == '__main__':
  cli.run(main)
