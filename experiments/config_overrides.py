"""The --config flags' checks before absl parses them: one line naming a bad file or field.

Used by `cli.parse_flags` (experiments/cli.py, whose docstring gives the behaviour): an unknown
`--config.<path>` field names the closest field (difflib), a missing --config file says so. Also
the experiment configs by name, for launchers that take a config name.
"""
import difflib
import importlib.util
import os
import re

from absl import app
from absl import flags

FLAGS = flags.FLAGS

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_names():
  """The experiment configs by name: the modules of experiments/configs with a get_config()."""
  folder = os.path.join(_REPO, 'experiments', 'configs')
  return sorted(n[:-3] for n in os.listdir(folder)
                if n.endswith('.py') and n not in ('__init__.py', 'common.py'))


def check_config_name(name, what):
  """Raises app.UsageError unless `name` is one of `config_names()` (closest names in the text)."""
  names = config_names()
  if name not in names:
    raise app.UsageError(f'{what}: no config {name!r} in experiments/configs; '
                         + _closest(name, names).replace('its fields', 'the configs'))


def _config_flag_names():
  # Config flags are the ones with override values (config_flags' is_config_flag is not exported).
  return [name for name, flag in FLAGS._flags().items()  # pylint: disable=protected-access
          if hasattr(type(flag), 'override_values') and '.' not in name]


def _config_file_argument(name, argv):
  """The --name=<file> argument in argv, else the flag's default file (None when neither)."""
  for i, arg in enumerate(argv):
    match = re.match(rf'^--?{re.escape(name)}(=(.*))?$', arg)
    if match:
      return match.group(2) if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else '')
  default = FLAGS[name].default
  return default if isinstance(default, str) else None


def _load_config_file(argument):
  path, _, parameter = argument.partition(':')
  spec = importlib.util.spec_from_file_location('_cli_config_check', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(parameter) if parameter else module.get_config()


def _closest(name, choices):
  close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
  if close:
    return f'did you mean {close[0]}?'
  shown = sorted(choices)
  return 'its fields: ' + ', '.join(shown[:25]) + (', ...' if len(shown) > 25 else '')


# {config flag name: file} of config flags whose overrides work without a file on the command
# line (the inference launchers'): parse_flags reads the file for them, as if it had been given.
DEFAULT_CONFIG_FILES = {}
# The names of those flags for which parse_flags did so in this process.
DEFAULT_CONFIG_FILES_USED = set()


def _overrides(name, argv):
  return [a.split('=', 1)[0].lstrip('-') for a in argv
          if re.match(rf'^--?(no)?{re.escape(name)}\.', a)]


def check_config_overrides(argv):
  """Checks every --config file and --config.<path> override in argv before absl parses them.

  Returns:
    None when they are fine, else a one-line message naming the bad file or field and the closest
    field name.
  """
  for name in _config_flag_names():
    overrides = _overrides(name, argv)
    argument = _config_file_argument(name, argv)
    if argument is None and not overrides:
      continue
    if not argument:
      return f'--{name}.<field> overrides need --{name}=<config file> before them'
    path = argument.partition(':')[0]
    if not os.path.isfile(path):
      return f'--{name}={path}: no such config file'
    if not overrides:
      continue
    try:
      config = _load_config_file(argument)
    except Exception:  # pylint: disable=broad-except
      return None  # absl reports a config file that fails to load, with its traceback.
    for override in overrides:
      dotted = override.split('.', 1)[1]  # after 'config.' (or 'noconfig.' for booleans)
      node, walked = config, []
      for part in dotted.split('.'):
        keys = list(node.keys()) if hasattr(node, 'keys') else []
        if part not in keys:
          where = '.'.join(walked) or 'the config'
          if not keys:
            return f'--{name}.{dotted}: {where} is a value, not a section'
          candidates = ['.'.join(walked + [k]) for k in keys]
          return (f'--{name}.{dotted}: {where} has no field {part!r}; '
                  + _closest('.'.join(walked + [part]), candidates))
        node = node[part]
        walked.append(part)
  return None


def with_default_config_files(argv):
  """argv with --<name>=<DEFAULT_CONFIG_FILES[name]> put before overrides given without a file."""
  argv = list(argv)
  for name, path in DEFAULT_CONFIG_FILES.items():
    explicit = any(re.match(rf'^--?{re.escape(name)}(=|$)', a) for a in argv)
    if not explicit and _overrides(name, argv):
      argv.insert(1, f'--{name}={path}')
      DEFAULT_CONFIG_FILES_USED.add(name)
  return argv
