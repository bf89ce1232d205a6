r"""Exports a run's vocoder as one artifact that runs with JAX alone (`wavegrad_jax.inference.export`).

  python -m experiments.export --workdir=runs/frame_tiny_flow --schedule=4 --output_dir=runs/frame_tiny_flow/exported

Writes <output_dir>/vocoder.jax_exported (the jitted sampler with the EMA weights baked in, for
one chunk shape: --chunk_frames mel frames, --batch_size chunks a call) and meta.json. Run it with
`wavegrad_jax.inference.export_runtime.load(output_dir)(mel)`; that module imports nothing of the library.
"""
import os

from absl import app
from absl import flags

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.inference import export
from wavegrad_jax import processes

FLAGS = flags.FLAGS
flags.DEFINE_string('schedule', None, "The schedule (betas, process 'wavegrad') or time grid "
                    "(process 'flow') baked into the artifact (default config.sampling.schedule).")
flags.DEFINE_string('output_dir', None, 'Default: <workdir>/exported.')
flags.DEFINE_integer('chunk_frames', 128, 'Mel frames per chunk (the artifact\'s fixed shape).')
flags.DEFINE_integer('overlap_frames', 8, 'Frames cross-faded between neighbouring chunks.')
flags.DEFINE_integer('batch_size', 1, 'Chunks per call.')
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = checkpoint_flags.preview_config()
  spec = FLAGS.schedule or config.sampling.schedule
  try:
    processes.parse_grid_from_config(config, spec)
  except ValueError as e:
    raise errors.ConfigError(f'--schedule={spec}: {e}') from None
  if FLAGS.chunk_frames < 1 or not 0 <= FLAGS.overlap_frames < FLAGS.chunk_frames or (
      FLAGS.batch_size < 1):
    raise app.UsageError('need --chunk_frames >= 1, 0 <= --overlap_frames < --chunk_frames and '
                         '--batch_size >= 1')
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.workdir, 'exported')
  errors.check_output_dir(output_dir, '--output_dir')
  params, config, step = checkpoint_flags.load_checkpoint()
  meta = export.export_vocoder(params, config, spec, FLAGS.chunk_frames, FLAGS.overlap_frames,
                               FLAGS.batch_size, output_dir)
  print(f'exported step {step} ({meta["model"]} under {meta["process"]["name"]!r}, '
        f'{meta["network_evaluations"]} network evaluations per chunk) to {output_dir} '
        f'({export.exported_size_bytes(output_dir) / 1e6:.1f} MB)')


if __name__ == '__main__':
  cli.run(main)
