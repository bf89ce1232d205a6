"""The adversarial fine-tune of a trained run's k-step sampler, beside the main trainer.

`finetune_adversarial(config, workdir)` reads as `trainer.train_and_evaluate` does and shares its
parts: the same checks before any work, data pipeline, checkpoints (one orbax checkpoint holding
`adversarial.AdversarialState`, both optimisers included, so a killed fine-tune resumes exactly),
evaluation (held-out loss of the process and vocoded examples with the k-step grid), reporting
and loop. What differs is the state, its step (`adversarial.adversarial_step`) and the start:
the generator starts from the teacher's EMA weights (config.adversarial.teacher, through the
fine-tuning path `train.init_from`), the discriminators from scratch.
"""
import os
import sys
import time

from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import adversarial
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import options as options_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer
from wavegrad_jax.training.state import make_optimizer


def checked_options(config):
  """`adversarial.AdversarialOptions` of the config, each bad field one ConfigError line."""
  try:
    options = adversarial.AdversarialOptions.from_config(config)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None
  if not options.teacher:
    raise errors.ConfigError('no teacher: pass --teacher=<workdir of the trained run> (or '
                             'config.adversarial.teacher); the fine-tune starts from its weights')
  return options


def with_teacher(config, options, workdir, start_afresh=False):
  """The config as the fine-tune runs and records it: the teacher's absolute path in
  adversarial.teacher and train.init_from, and the k-step grid as the examples' schedule.

  Refuses (ConfigError) a teacher that is no run, and a resume under another teacher than the
  one the workdir's fine-tune started from (with `start_afresh` that run is moved aside, so any
  teacher may start the new one).
  """
  teacher = os.path.abspath(options.teacher)
  if not os.path.exists(os.path.join(teacher, checkpoints.CONFIG_FILE)):
    raise errors.ConfigError(f'--teacher={options.teacher}: no training run there (no '
                             f'{checkpoints.CONFIG_FILE}); give the workdir of a trained run')
  saved_path = os.path.join(os.path.abspath(workdir), checkpoints.CONFIG_FILE)
  if os.path.exists(saved_path) and not start_afresh:
    recorded = checkpoints.load_config(workdir).get('adversarial', {}).get('teacher', '')
    if recorded and os.path.abspath(recorded) != teacher:
      raise errors.ConfigError(
          f'{workdir} holds a fine-tune of the teacher {recorded}, not of --teacher='
          f'{options.teacher}; resume it with --teacher={recorded}, or use a new --workdir')
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.adversarial.teacher = teacher
    config.train.init_from = teacher
    config.train.sample_schedule = options.grid_spec()
  return config


def finetune_adversarial(config, workdir, *, start_afresh=False):
  """Fine-tunes a trained run's k-step sampler adversarially (see the module docstring).

  Writes under `workdir` what `train_and_evaluate` writes (config.json with the teacher recorded,
  checkpoints/, checkpoints_best/, tensorboard/, metrics.jsonl, samples/).

  Args:
    config: the experiment config with an `adversarial` section (adversarial.teacher set).
    workdir: the fine-tune's directory; a fine-tune there is resumed.
    start_afresh: move the run in `workdir` aside first and start from the teacher again.
  Returns:
    the summary dict of `train_and_evaluate`.
  """
  options = checked_options(config)
  mesh = trainer._start_devices(config)  # pylint: disable=protected-access
  options_lib.enable_persistent_cache_from_config(config)
  config = with_teacher(config, options, workdir, start_afresh)
  try:  # the grid and sampler, before the data is opened
    adversarial.make_generator(model_lib.build_model_from_config(
        model_lib.resolved_from_config(config)), config, options)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None
  config, workdir, init, splits = trainer._checked_request(  # pylint: disable=protected-access
      config, workdir, mesh, start_afresh)
  model = model_lib.build_model_from_config(config)
  tx, disc, disc_tx = make_optimizer(config.train), options.build_discriminators(), (
      options.disc_optimizer())
  abstract, shardings = adversarial.abstract_state(model, tx, disc, disc_tx, config, mesh)
  run = trainer._Run(config, workdir, mesh, model, shardings, splits)  # pylint: disable=protected-access
  state, start_step, notes = trainer._restore_or_start(  # pylint: disable=protected-access
      run, tx, abstract, init, start_afresh,
      fresh_state=lambda: adversarial.init_state(model, tx, disc, disc_tx, config, mesh))
  run.preemption = parallel.Preemption()
  run.reporter = options_lib.reporter_from_config(workdir, config, start_step)
  trainer._announce(run, abstract, start_step, notes)  # pylint: disable=protected-access
  run.reporter.console(f'adversarial fine-tune of the {options.steps}-step sampler '
                       f"({options.grid_spec()!r}) against {'+'.join(options.discriminators)}: "
                       f'{model_lib.count_params(abstract.disc_params):,} discriminator '
                       'parameters')
  run.summary = trainer._initial_summary(run, start_step)  # pylint: disable=protected-access
  num_steps = int(config.train.num_steps)
  if start_step >= num_steps:
    run.reporter.console(f'already trained to step {start_step} >= train.num_steps={num_steps}')
    trainer._close(run, None, stopping=False)  # pylint: disable=protected-access
    run.reporter.print_outputs(run.summary)
    return run.summary
  compile_start = time.time()
  step_fn = adversarial.compile_adversarial_step(model, tx, disc, disc_tx, config, options, mesh,
                                                 shardings)
  run.reporter.console(f'fine-tune step compiled in {time.time() - compile_start:.1f} s')
  iterator = trainer._train_batches(run).iterate(start_step)  # pylint: disable=protected-access
  run.reporter.start_progress()
  step = start_step
  try:
    step = trainer._train_loop(run, step_fn, state, iterator, start_step)  # pylint: disable=protected-access
  finally:
    trainer._close(run, iterator, stopping=sys.exc_info()[1] is not None)  # pylint: disable=protected-access
  run.summary['step'] = step
  run.reporter.print_outputs(run.summary)
  return run.summary
