"""The library's layout holds (README "Layout"), and each rule of .ci/check_layout.py can fail.

Each mutation writes a small tree that breaks one rule and no other, and the checker must name it;
a checker that finds nothing would pass the real tree too.
"""
import ast
import os
import runpy
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_checker = runpy.run_path(os.path.join(REPO, '.ci', 'check_layout.py'))


def test_the_library_layout_has_no_problems():
  assert _checker['problems'](REPO) == []


def test_every_package_is_ranked_and_documented():
  """A new subpackage gets a rank in LAYERS and a docstring saying what it owns."""
  layers = _checker['LAYERS']
  root = os.path.join(REPO, 'wavegrad_jax')
  for name in sorted(os.listdir(root)):
    init = os.path.join(root, name, '__init__.py')
    if os.path.isfile(init):
      assert name in layers, f'{name}: add it to LAYERS in .ci/check_layout.py'
      with open(init) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ''
      assert 'may import' in doc.lower(), (
          f'{name}/__init__.py: its docstring says what it owns and what it may import')


def _tree(tmp_path, files):
  for rel, text in files.items():
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
  for pkg in {os.path.dirname(r) for r in files if r.startswith('wavegrad_jax/')}:
    init = tmp_path / pkg / '__init__.py'
    if not init.exists():
      init.write_text('"""A package."""\n')
  return _checker['problems'](str(tmp_path))


GOOD = {
    'wavegrad_jax/audio/frontend.py': 'from wavegrad_jax import errors\n',
    'wavegrad_jax/errors.py': '"""Leaf."""\n',
    'wavegrad_jax/sampling/scan.py': ('from wavegrad_jax.audio import frontend\n'
                                      'def sample(options, mel):\n  return mel\n'
                                      'class Options:\n  @classmethod\n'
                                      '  def from_config(cls, config):\n    return cls()\n'),
    'wavegrad_jax/sampling/options.py': (
        'import ml_collections\n'
        'def sampler_from_config(config):\n  """Adapter."""\n  return config.sampling\n'),
    'wavegrad_jax/training/trainer.py': 'def train_and_evaluate(config, workdir):\n  pass\n',
    'experiments/main.py': 'from absl import flags\n',
}

MUTATIONS = [
    ('module size', {'wavegrad_jax/audio/frontend.py': 'x = 1\n' * 601}, 'over 600'),
    ('launcher size', {'experiments/main.py': 'x = 1\n' * 151}, 'experiments/main.py: 151 lines'),
    ('upward import', {'wavegrad_jax/audio/frontend.py': 'from wavegrad_jax.training import trainer\n'},
     'not below audio'),
    ('same-rank import', {'wavegrad_jax/models/net.py': 'from wavegrad_jax.data import x\n',
                          'wavegrad_jax/data/x.py': ''}, 'not below models'),
    ('cycle', {'wavegrad_jax/sampling/a.py': 'from wavegrad_jax.sampling import b\n',
               'wavegrad_jax/sampling/b.py': 'from wavegrad_jax.sampling import a\n'},
     'import cycle'),
    ('absl flags', {'wavegrad_jax/training/trainer.py': 'from absl import flags\n'},
     'imports absl.flags'),
    ('config param', {'wavegrad_jax/sampling/scan.py': 'def sample(config, mel):\n  pass\n'},
     'sample() takes config'),
    ('section param', {'wavegrad_jax/audio/frontend.py': 'def mel(x, audio_cfg):\n  pass\n'},
     'mel() takes audio_cfg'),
    ('annotated', {'wavegrad_jax/models/net.py': 'def build(c: ml_collections.ConfigDict):\n  pass\n'},
     'build() takes c'),
    ('ml_collections', {'wavegrad_jax/data/x.py': 'import ml_collections\n'},
     'imports ml_collections'),
    ('below-trainer module', {'wavegrad_jax/training/parallel.py': 'def mesh(config):\n  pass\n'},
     'mesh() takes config'),
    ('from_config not a classmethod', {'wavegrad_jax/sampling/scan.py': (
        'def from_config(config):\n  pass\n')}, 'from_config() takes config'),
    ('edge name', {'wavegrad_jax/sampling/options.py': 'def make(config):\n  pass\n'},
     'make() takes a config in options.py'),
    ('fat adapter', {'wavegrad_jax/sampling/options.py': (
        'def sampler_from_config(config):\n  """Doc."""\n' + '  x = 1\n' * 13)},
     'sampler_from_config() is 13 lines'),
]


def test_a_good_tree_passes(tmp_path):
  assert _tree(tmp_path, GOOD) == []


@pytest.mark.parametrize('files,expected', [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_each_rule_catches_its_violation(tmp_path, files, expected):
  found = _tree(tmp_path, {**GOOD, **files})
  assert len(found) == 1 and expected in found[0], found


def test_the_readme_layout_tree_matches_the_packages():
  """README "Layout" names each subpackage of wavegrad_jax/ once, and no package that is gone."""
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  section = readme.split('\n## Layout\n', 1)[1].split('\n## ', 1)[0]
  tree = section.split('```', 2)[1]
  listed = {line.split()[0].rstrip('/') for line in tree.splitlines()
            if line.startswith('  ') and line.split()[0].endswith('/')}
  root = os.path.join(REPO, 'wavegrad_jax')
  packages = {n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, '__init__.py'))}
  assert listed == packages
