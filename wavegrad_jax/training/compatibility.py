"""Whether a checkpoint fits a run: its saved state's structure, and the config fields that differ.

A readable checkpoint whose saved state has another structure than the run's (the run's config
changed: model, frontend, optimiser) is not corruption: resuming from it is refused
(`errors.ResumeMismatchError`, naming the differing fields) and nothing is moved. Launchers that
read a run compare its model and frontend with --config (`frontend_differences`) the same way.
"""
import os

import jax
import ml_collections
import orbax.checkpoint as ocp

from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training.run_files import CONFIG
from wavegrad_jax.training.run_files import PREVIOUS_RUNS_DIR
from wavegrad_jax.training.run_files import STATE
from wavegrad_jax.training.run_files import absolute_path
from wavegrad_jax.training.run_files import checkpoint_dirs
from wavegrad_jax.training.run_files import config_from_dict
from wavegrad_jax.training.run_files import read_only_manager

# Training settings that, with the model and frontend, decide the saved state's structure and
# values.
STATE_TRAIN_FIELDS = ('grad_clip_norm', 'learning_rate', 'lr_schedule', 'warmup_steps',
                      'end_lr_factor', 'adam_b1', 'adam_b2', 'adam_eps', 'ema_decay', 'ema_warmup')


def _key_name(entry):
  for attribute in ('name', 'key', 'idx'):
    if hasattr(entry, attribute):
      return str(getattr(entry, attribute))
  return str(entry)


def _leaf_table(tree):
  """{'a/b/0/c': (shape, dtype name)} of a pytree of arrays or array metadata."""
  return {'/'.join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def state_differences(saved_tree, abstract_state, limit=3):
  """How a checkpoint's saved state differs from the state a run would restore into it.

  Args:
    saved_tree: the checkpoint's state metadata tree (`item_metadata(step)['state'].tree`).
    abstract_state: the run's TrainState of jax.ShapeDtypeStruct leaves.
    limit: examples per kind of difference.
  Returns:
    list of short strings (arrays only in the checkpoint, only in this run, or with another
    shape / dtype); empty when every array matches.
  """
  saved, wanted = _leaf_table(saved_tree), _leaf_table(abstract_state)
  out = []
  for names, where in ((sorted(set(saved) - set(wanted)), 'only in the checkpoint'),
                       (sorted(set(wanted) - set(saved)), 'only in this run')):
    if names:
      out.append(f'{len(names)} arrays {where} (e.g. {", ".join(names[:limit])})')
  other = [f'{k} {saved[k][1]}{list(saved[k][0])} vs {wanted[k][1]}{list(wanted[k][0])}'
           for k in sorted(set(saved) & set(wanted)) if saved[k] != wanted[k]]
  if other:
    out.append(f'{len(other)} arrays with another shape or dtype (e.g. {"; ".join(other[:limit])})')
  return out


def state_config_differences(saved_config, config):
  """Fields of the sections that shape the saved state (model, audio, the optimiser and EMA
  settings of `train`, mesh) that differ between a checkpoint's config and a run's."""
  out = frontend_differences(saved_config, config, a_name='the checkpoint', b_name='this run',
                             ignore=('model.dtype',))
  pick = lambda c: {'train': {k: c.train.get(k, None) for k in STATE_TRAIN_FIELDS},
                    'mesh': c.get('mesh', ml_collections.ConfigDict()).to_dict()}
  return out + jsonable.differences(pick(saved_config), pick(config), old_name='the checkpoint',
                                    new_name='this run')


def model_and_frontend(config):
  """{'model', 'audio', 'process'} of a config as plain dicts, with what an older run lacks filled in.

  The model's variant name, the mel-convention fields added since, and the process (runs from
  before processes had names: 'wavegrad') take their defaults.
  """
  return {'model': model_lib.model_section_from_config(config.model),
          'audio': mel_conventions.with_default_fields(config.audio.to_dict()),
          'process': processes.recorded_fields_from_config(config)}


def frontend_differences(a, b, a_name='the checkpoint', b_name='--config', ignore=()):
  """Fields of the `model`, `audio` and `process` sections that differ between two configs.

  Args:
    a: the recorded config (a checkpoint's, a workdir's).
    b: the config compared with it (--config, this run's).
    a_name, b_name: where `a` and `b` come from, for the messages.
    ignore: dotted paths left out, e.g. ('model.dtype',).
  Returns:
    list of 'section.field: <a value> in <a_name> vs <b value> now' strings
    (`jsonable.differences`), empty when the models and frontends agree.
  """
  return jsonable.differences(model_and_frontend(a), model_and_frontend(b), old_name=a_name,
                              new_name=b_name, ignore=ignore)


def recorded_choice_hint(recorded, differences):
  """A clause naming the --config flags that select what a run recorded, for refusal messages.

  Args:
    recorded: the config a run recorded (its config.json or a checkpoint's).
    differences: `frontend_differences` strings.
  Returns:
    '' when no named choice differs, else e.g. " (its model: --config.model.dilation_order=
    'reimplementations')".
  """
  model = model_lib.model_section_from_config(recorded.model)
  flags = [f'--config.model.{key}={model[key]!r}' for key in ('name', 'dilation_order')
           if key in model and any(d.startswith(f'model.{key}:') for d in differences)]
  process = processes.recorded_fields_from_config(recorded)
  flags += [f'--config.process.{"flow." if key != "name" else ""}{key}={process[key]!r}'
            for key in process if any(d.startswith(f'process.{key}:') for d in differences)]
  return f' (its model: {" ".join(flags)})' if flags else ''


def saved_metadata(directory, step):
  """(state metadata tree, config or None) of checkpoint `step`; raises when unreadable."""
  manager = read_only_manager(directory)
  try:
    tree = manager.item_metadata(step)[STATE].tree
    try:
      restored = manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))
      config = config_from_dict(restored[CONFIG])
    except Exception:  # pylint: disable=broad-except
      config = None  # the state decides whether the checkpoint is readable.
    return tree, config
  finally:
    manager.close()


def refuse_mismatch(directory, step, saved_tree, saved_config, abstract_state, config, workdir):
  """Raises errors.ResumeMismatchError when checkpoint `step` does not fit `abstract_state`."""
  mismatch = state_differences(saved_tree, abstract_state)
  if not mismatch:
    return
  fields = state_config_differences(saved_config, config) if saved_config is not None else []
  # The first line is what a person reads: which setting differs and the way out; the internal
  # array paths follow on their own lines.
  # A changed value says more than a field one config lacks (a newer version's additions).
  ranked = sorted(fields, key=lambda f: ' vs ' not in f)
  differs = (f'{ranked[0]}' + (f', and {len(ranked) - 1} more setting(s)' if len(ranked) > 1
                               else '') if ranked else 'no recorded config field differs')
  raise errors.ResumeMismatchError(
      f'{directory}/{step} holds a training state made under other settings, so this run cannot '
      f'resume from it ({differs}). Nothing was changed. Train in a new --workdir, pass '
      '--start_afresh, or rerun with the settings that run was trained with.\n'
      + (f'  differing settings: {"; ".join(fields)}\n' if fields else '')
      + f'  saved state: {"; ".join(mismatch)}\n'
      f'  --start_afresh moves the old run into {os.path.join(workdir, PREVIOUS_RUNS_DIR)}/ and '
      'trains from step 0 here')


def check_resumable(workdir, config, abstract_state):
  """Raises errors.ResumeMismatchError unless a run can resume from its newest readable checkpoint.

  The check `RunCheckpoints.restore_latest` makes, made before anything is opened for writing:
  it creates, moves and restores nothing (unreadable checkpoints are skipped here; restoring sets
  them aside).

  Args:
    workdir: the run's directory.
    config: this run's config.
    abstract_state: this run's TrainState of jax.ShapeDtypeStruct leaves.
  Returns:
    the `state_config_differences` of a checkpoint the run can resume from (settings such as the
    learning rate that change the training but not the saved state's shape), to be reported.
  """
  directory, _ = checkpoint_dirs(workdir, config)
  if not os.path.isdir(directory):
    return []
  manager = read_only_manager(directory)
  try:
    steps = sorted(manager.all_steps(), reverse=True)
  finally:
    manager.close()
  for step in steps:
    try:
      saved_tree, saved_config = saved_metadata(directory, step)
    except Exception:  # pylint: disable=broad-except
      continue
    refuse_mismatch(directory, step, saved_tree, saved_config, abstract_state, config,
                     absolute_path(workdir))
    return state_config_differences(saved_config, config) if saved_config is not None else []
  return []
