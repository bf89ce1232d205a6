"""Restoring what inference needs from a workdir alone: the parameters and the config to run with.

Every launcher that reads a run loads it with `load_for_inference`: the parameters, with the
model and frontend of the checkpoint and the inference sections (sampling, eval, search) of
--config when one is given. A --config whose model or frontend differs from the checkpoint's (the
other UBlock dilation order, say, which has the same parameter shapes) is refused with the
differing fields, never loaded silently.
"""
import os

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

from wavegrad_jax import errors
from wavegrad_jax.training.compatibility import frontend_differences
from wavegrad_jax.training.compatibility import recorded_choice_hint
from wavegrad_jax.training.run_files import CONFIG
from wavegrad_jax.training.run_files import CONFIG_FILE
from wavegrad_jax.training.run_files import STATE
from wavegrad_jax.training.run_files import absolute_path
from wavegrad_jax.training.run_files import checkpoint_dirs
from wavegrad_jax.training.run_files import config_from_dict
from wavegrad_jax.training.run_files import load_config
from wavegrad_jax.training.run_files import maybe_config
from wavegrad_jax.training.run_files import read_only_manager

def restore_params(workdir, step=None, ema=True):
  """Restores just the (EMA) parameters of a run for inference, on this process's first device.

  Works on any machine, whatever mesh the run trained on: arrays are read unsharded onto a single
  device, and only the requested parameter tree is read.

  Args:
    workdir: a training run's directory.
    step: None for the latest readable periodic checkpoint, 'best' for the best-by-held-out-loss
      checkpoint, or an int step of a periodic checkpoint.
    ema: True for the exponential moving average of the parameters (what to vocode with), False
      for the raw trained parameters.
  Returns:
    (params, config, step): params is a nested dict of float32 jax.Arrays as
    `build_model_from_config(config)` expects, config the ConfigDict the checkpoint was trained with, step its int step.
  Raises:
    FileNotFoundError: no (readable) checkpoint matches.
  """
  periodic, best = checkpoint_dirs(workdir, maybe_config(workdir))
  directory = best if step == 'best' else periodic
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir}: no checkpoint directory {directory}')
  manager = read_only_manager(directory)
  try:
    steps = sorted(manager.all_steps(), reverse=True)
    if isinstance(step, int):
      if step not in steps:
        raise FileNotFoundError(f'{directory}: no checkpoint at step {step}; have {sorted(steps)}')
      candidates = [step]
    else:
      candidates = steps
    if not candidates:
      raise FileNotFoundError(f'{directory}: holds no checkpoint')
    key = 'ema_params' if ema else 'params'
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    errors = []
    for s in candidates:
      try:
        tree = manager.item_metadata(s)[STATE].tree[key]
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                tree)
        restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
        restored = manager.restore(s, args=ocp.args.Composite(**{
            STATE: ocp.args.PyTreeRestore(item={key: abstract}, restore_args={key: restore_args},
                                          partial_restore=True),
            CONFIG: ocp.args.JsonRestore()}))
        return restored[STATE][key], config_from_dict(restored[CONFIG]), int(s)
      except Exception as e:  # pylint: disable=broad-except
        errors.append(f'step {s}: {type(e).__name__}: {str(e).splitlines()[0][:200]}')
        logging.warning('checkpoint %s/%d cannot be restored (%s); trying an older one',
                        directory, s, errors[-1])
    raise FileNotFoundError(f'{directory}: no readable checkpoint ({"; ".join(errors)})')
  finally:
    manager.close()


def resolve_checkpoint_path(path):
  """Which run and checkpoint a path names: a workdir or one of its checkpoint folders.

  Args:
    path: a training workdir (its latest periodic checkpoint), its periodic or best checkpoint
      directory (e.g. runs/tiny/checkpoints, runs/tiny/checkpoints_best), or one step of those
      (runs/tiny/checkpoints/2000).
  Returns:
    (workdir, step) for `restore_params`: step None (latest), 'best' or an int.
  Raises:
    FileNotFoundError: the path is none of these, naming what was expected.
  """
  path = absolute_path(path).rstrip('/')
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: no such directory; give a training workdir or one of its '
                            'checkpoint folders (<workdir>/checkpoints[/<step>], '
                            '<workdir>/checkpoints_best)')
  name, parent = os.path.basename(path), os.path.dirname(path)
  candidates = [(path, None)]
  if name.isdigit():
    candidates.append((os.path.dirname(parent), int(name)))
  candidates.append((parent, None))
  for workdir, step in candidates:
    try:
      periodic, best = checkpoint_dirs(workdir, maybe_config(workdir))
    except (OSError, ValueError):
      continue
    where = parent if isinstance(step, int) else path
    if where == workdir and os.path.isdir(periodic):
      return workdir, None
    if where == periodic:
      return workdir, step
    if where == best:
      return workdir, 'best'
  raise FileNotFoundError(f'{path}: neither a training workdir (with a {CONFIG_FILE} and '
                          'checkpoints/) nor one of its checkpoint folders '
                          '(<workdir>/checkpoints[/<step>], <workdir>/checkpoints_best)')


INFERENCE_SECTIONS = ('sampling', 'eval', 'search', 'compile')


def _merged(default, override):
  out = dict(default)
  for k, v in override.items():
    out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def inference_config(checkpoint_config, defaults, override=None):
  """The config an inference launcher runs with.

  The model and frontend always come from the checkpoint. The inference-time sections (sampling,
  eval, search) come from `override` (the launcher's --config, with its --config.x=y flags) when
  given, else from the checkpoint; fields either lacks (a run older than the field) take the
  values in `defaults`.

  Args:
    checkpoint_config: the ConfigDict the checkpoint trained with.
    defaults: a full default config (experiments.configs.common.get_common_config()).
    override: optional ConfigDict from --config.
  Returns:
    A new, unlocked ConfigDict.
  """
  out = checkpoint_config.to_dict()
  for section in INFERENCE_SECTIONS:
    source = override if override is not None else checkpoint_config
    value = source.get(section, None) if hasattr(source, 'get') else None
    base = defaults[section].to_dict()
    out[section] = _merged(base, value.to_dict() if value is not None else {})
  return ml_collections.ConfigDict(out)


def parse_step(text):
  """A --step flag: '' or None -> None (latest), 'best' -> 'best', '123' -> 123."""
  text = str(text if text is not None else '').strip()
  if not text:
    return None
  return 'best' if text == 'best' else int(text)


def _refuse_other_model(workdir, recorded, override):
  diffs = frontend_differences(recorded, override, ignore=('model.dtype',))
  if diffs:
    raise errors.ConfigError(
        f'--config describes another model or frontend than the checkpoint in {workdir}: '
        + '; '.join(diffs) + '. The checkpoint would be vocoded as a different network (or from '
        "other mels), so it is refused. Drop --config (the checkpoint's own model, frontend and "
        'inference settings are used), or pass the config the run was trained with'
        + recorded_choice_hint(recorded, diffs) + '; only the sampling / eval / search sections '
        'of --config are applied.')


def load_for_inference(workdir, defaults, step=None, ema=None, override=None):
  """Restores a run's parameters with the config inference should use.

  Args:
    workdir: the training run's directory.
    defaults: a full default config (experiments.configs.common.get_common_config()).
    step: '' / None (latest), 'best', or an int step (strings are parsed).
    ema: True / False, or None for config.eval.ema.
    override: optional --config ConfigDict (see `inference_config`); its model and audio sections
      must describe the checkpoint's model and frontend (compute dtype excepted).
  Returns:
    (params, config, step).
  Raises:
    errors.ConfigError: `override` describes another model or frontend than the checkpoint, e.g. the
      other UBlock dilation order, whose parameters have the same shapes (the message lists the
      differing fields and the flags that match the checkpoint).
    FileNotFoundError: no readable checkpoint.
  """
  recorded = load_config(workdir)
  if override is not None:
    _refuse_other_model(workdir, recorded, override)
  saved = inference_config(recorded, defaults, override)
  ema = bool(saved.eval.ema if ema is None else ema)
  params, ckpt_config, step = restore_params(workdir, parse_step(step), ema=ema)
  if override is not None:
    _refuse_other_model(workdir, ckpt_config, override)
  config = inference_config(ckpt_config, defaults, override)
  config.eval.ema = ema
  return params, config, step
