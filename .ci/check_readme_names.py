"""Checks that every name the README mentions exists in the code (tests/test_readme_names.py).

The README names configs, launchers, flags, sampler presets, named schedules and mel conventions in
prose, inline code, command lines and tables; a rename in the code leaves the prose behind unless
something fails. `readme_names(text)` finds the mentions by their context (below) and
`problems(text)` returns one line per name the code does not have.

Mentions found, by kind:
  config: experiments/configs/NAME.py paths, --config= / --mel_convention= .py values,
    --config_name= / --rtf=NAME: values, a backticked name followed by "config", the backticked
    names in the parenthesis after "`configs/`" and after "(likewise", and a table's `config`
    column.
  file: every other path ending in .py, and backticked bare NAME.py (a module of experiments/,
    experiments/configs/, wavegrad_jax/ or wavegrad_jax/data/).
  launcher: `python -m experiments.NAME`, and the backticked names in the parenthesis after
    "absl launchers".
  flag: --name (absl flags defined by experiments/*.py, or absl's own); --config.a.b / --degrade.a
    (a field path of some config file's get_config()).
  preset: --samplers= values, a backticked name after "preset", a table's `sampler` column.
  schedule: --schedules= / --schedule= / --rtf=...:S: values, backticked names of the form 6 or
    6_source, a table's `steps` column; each must be in sampling.named_schedules or parse as a
    spec (linear:..., list:..., a .json path).
  convention: --mel_convention= values and the backticked names right after
    "`synthesize --mel_convention=`" (up to "or a config file").

Run it as `python .ci/check_readme_names.py` from the repository root: it prints the problems and
exits 1 if there are any.
"""
import glob
import importlib.util
import os
import re
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# Flags of other tools the README shows (tensorboard --logdir, pip install --target); absl flags
# never have hyphens, so pip's --no-deps / --index-url are skipped by their form.
EXTERNAL_FLAGS = {'logdir', 'target'}
# absl's own flags.
ABSL_FLAGS = {'verbosity', 'v', 'only_check_args', 'help', 'helpfull', 'helpshort', 'flagfile',
              'logtostderr', 'alsologtostderr', 'log_dir'}
_NAME = r'[A-Za-z0-9_]+'


def _split_values(value):
  return [v for v in value.split(',') if v]


def _backticked(text):
  """Inline code spans of `text` (fenced blocks left out, so that their fences pair no span)."""
  prose = re.sub(r'```.*?```', ' ', text, flags=re.S)
  return re.findall(r'`([^`\n]+)`', prose)


def _without_examples(text):
  """`text` without its untagged fenced blocks: the Extending section's hypothetical code
  (a vctk corpus, a my_vocoder model, a new preset) names things that are not meant to exist."""
  kept, fence = [], None
  for line in text.splitlines():
    if line.startswith('```'):
      fence = line[3:].strip() if fence is None else None
      if fence == '' or (fence is None and kept and kept[-1] is None):
        kept.append(None)  # the untagged block's fences are dropped with it
        continue
    if fence == '':
      continue
    kept.append(line)
  return '\n'.join(line for line in kept if line is not None)


def _table_columns(text, column):
  """Values of a markdown table column named `column` (every table that has one)."""
  values = []
  lines = text.splitlines()
  for i, line in enumerate(lines):
    if not line.startswith('|') or i + 1 >= len(lines) or not lines[i + 1].startswith('|:'):
      continue
    header = [c.strip() for c in line.strip().strip('|').split('|')]
    if column not in header:
      continue
    index = header.index(column)
    for row in lines[i + 2:]:
      if not row.startswith('|'):
        break
      cells = [c.strip() for c in row.strip().strip('|').split('|')]
      if index < len(cells):
        values.append(cells[index])
  return values


def _parenthesis_after(text, marker):
  """The text inside the parenthesis that opens right after each `marker`, nesting respected."""
  out = []
  for m in re.finditer(re.escape(marker), text):
    start = text.find('(', m.end())
    if start < 0 or text[m.end():start].strip():
      continue
    depth = 0
    for j in range(start, len(text)):
      depth += {'(': 1, ')': -1}.get(text[j], 0)
      if depth == 0:
        out.append(text[start + 1:j])
        break
  return out


def readme_names(text):
  """{kind: set of names} of the README's mentions (see the module docstring for the contexts)."""
  text = _without_examples(text)
  names = {k: set() for k in ('config', 'file', 'launcher', 'flag', 'preset', 'schedule',
                              'convention')}
  flat = re.sub(r'\s+', ' ', text)
  names['config'].update(re.findall(rf'experiments/configs/({_NAME})\.py', text))
  for path in re.findall(r'(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.py)\b', text):
    if not path.startswith('experiments/configs/'):
      names['file'].add(path)
  names['config'].update(re.findall(rf'--config_name=({_NAME})', text))
  for spec in re.findall(r'--rtf=([^\s`]+)', text):
    config, _, rest = spec.partition(':')
    names['config'].add(config)
    names['schedule'].update(_split_values(rest.split(':')[0]))
  names['config'].update(re.findall(rf'`({_NAME})` config\b', flat))
  for inside in _parenthesis_after(flat, '`configs/`') + _parenthesis_after(flat, '(likewise'):
    names['config'].update(n for n in _backticked(inside) if re.fullmatch(_NAME, n))
  names['config'].update(v for v in _table_columns(text, 'config') if v)

  names['launcher'].update(re.findall(rf'python -m experiments\.({_NAME})', text))
  for inside in _parenthesis_after(flat, 'absl launchers'):
    names['launcher'].update(n for n in _backticked(inside) if re.fullmatch(_NAME, n))

  for flag in re.findall(r'(?<![\w-])--([A-Za-z][\w.<>*-]*)', text):
    if '-' not in flag and flag not in EXTERNAL_FLAGS:
      names['flag'].add(flag)

  for value in re.findall(r'--samplers=([^\s`]+)', text):
    names['preset'].update(v for v in _split_values(value) if re.fullmatch(_NAME, v))
  names['preset'].update(re.findall(rf'\bpresets? `({_NAME})`', flat))
  names['preset'].update(v for v in _table_columns(text, 'sampler') if v)

  for value in re.findall(r'--schedules?=([^\s`]+)', text):
    names['schedule'].update(_split_values(value))
  names['schedule'].update(n for n in _backticked(text) if re.fullmatch(r'\d+(_[a-z]+)?', n))
  names['schedule'].update(v for v in _table_columns(text, 'steps') if v not in ('', '-'))

  names['convention'].update(v for v in re.findall(rf'--mel_convention=({_NAME})\b', text))
  for m in re.finditer(r'`synthesize --mel_convention=`(.*?)or a config file', flat):
    names['convention'].update(n for n in _backticked(m.group(1)) if re.fullmatch(_NAME, n))
  for v in re.findall(r'--mel_convention=(\S+\.py)', text):
    names['file'].add(v)
  return names


def _config_fields():
  """Every dotted field path of every experiments/configs/*.py get_config() (sections included)."""
  paths = set()

  def walk(section, prefix):
    for key in section.keys():
      path = f'{prefix}{key}'
      paths.add(path)
      value = section[key]
      if hasattr(value, 'keys') and not isinstance(value, str):
        walk(value, path + '.')

  for path in sorted(glob.glob(os.path.join(ROOT, 'experiments', 'configs', '*.py'))):
    module = runpy.run_path(path)
    if 'get_config' in module:
      walk(module['get_config'](), '')
  return paths


def _absl_flags():
  """Names of the flags experiments/*.py define (absl DEFINE_* and config_flags)."""
  found = set(ABSL_FLAGS)
  for path in glob.glob(os.path.join(ROOT, 'experiments', '*.py')):
    with open(path) as f:
      source = f.read()
    found.update(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
  return found


def problems(text):
  """One line per README mention the code does not have; empty when the README is true."""
  from wavegrad_jax.audio import conventions as mel_conventions  # pylint: disable=g-import-not-at-top
  from wavegrad_jax import sampling  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.diffusion import schedules  # pylint: disable=g-import-not-at-top
  from experiments.configs import common  # pylint: disable=g-import-not-at-top

  names = readme_names(text)
  out = []
  for name in sorted(names['config']):
    if not os.path.isfile(os.path.join(ROOT, 'experiments', 'configs', f'{name}.py')):
      out.append(f'config {name!r}: no experiments/configs/{name}.py')
  module_dirs = ['', 'experiments', 'experiments/configs', 'wavegrad_jax', 'wavegrad_jax/data']
  for path in sorted(names['file']):
    dirs = module_dirs if '/' not in path else ['']
    if not any(os.path.isfile(os.path.join(ROOT, d, path)) for d in dirs):
      out.append(f'file {path!r}: not in the repository')
  for name in sorted(names['launcher']):
    if importlib.util.find_spec(f'experiments.{name}') is None:
      out.append(f'launcher {name!r}: no module experiments.{name}')
  defined, fields = _absl_flags(), _config_fields()
  for flag in sorted(names['flag']):
    head, _, rest = flag.partition('.')
    if not rest:
      if head not in defined:
        out.append(f'flag --{flag}: no experiments/*.py defines it')
      continue
    if head not in defined:
      out.append(f'flag --{flag}: no experiments/*.py defines --{head}')
      continue
    # Placeholders (<field>, *, ...) and the `source/dir` shorthand are not names.
    path = rest.split('=')[0]
    parts = [p for p in re.split(r'[/.]', path) if p]
    if any(not re.fullmatch(_NAME, p) for p in parts):
      continue
    candidates = [path] if '/' not in path else [
        path.split('/')[0]] + [path.rsplit('.', 1)[0] + '.' + p for p in path.split('/')[1:]]
    for candidate in candidates:
      if candidate not in fields:
        out.append(f'flag --{head}.{candidate}: no config has the field {candidate}')
  for name in sorted(names['preset']):
    if name not in sampling.SAMPLER_PRESETS:
      out.append(f'sampler preset {name!r}: not in sampling.SAMPLER_PRESETS')
  named = common.sampling_config().named_schedules
  for name in sorted(names['schedule']):
    if name in named or '/' in name or name.endswith('.json') or name == '...':
      continue
    try:
      schedules.parse_schedule(name, named)
    except Exception:  # pylint: disable=broad-except
      out.append(f'schedule {name!r}: not in sampling.named_schedules and not a schedule spec')
  conventions = set(mel_conventions.CONVENTIONS) | set(getattr(mel_conventions, 'ALIASES', {}))
  for name in sorted(names['convention']):
    if name not in conventions and name != 'checkpoint':
      out.append(f"mel convention {name!r}: not in mel_conventions.CONVENTIONS "
                 f'({", ".join(sorted(conventions))})')
  return out


def main():
  with open(os.path.join(ROOT, 'README.md')) as f:
    found = problems(f.read())
  for line in found:
    print(f'README.md: {line}')
  return 1 if found else 0


if __name__ == '__main__':
  sys.exit(main())
