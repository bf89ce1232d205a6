"""Every config, launcher, flag, preset, schedule and mel convention the README names exists."""
import os
import runpy

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_checker = runpy.run_path(os.path.join(REPO, '.ci', 'check_readme_names.py'))


def _readme():
  with open(os.path.join(REPO, 'README.md')) as f:
    return f.read()


def test_the_readme_names_only_what_exists():
  assert _checker['problems'](_readme()) == []


def test_the_checker_sees_every_kind_of_mention():
  """The contexts are found at all: a checker that finds nothing passes every README."""
  names = _checker['readme_names'](_readme())
  assert {'tiny', 'base', 'tiny_hifigan', 'tiny_espnet', 'small'} <= names['config']
  assert {'main', 'evaluate', 'compare_samplers', 'accelerator_check'} <= names['launcher']
  assert {'workdir', 'config.sampling.gla.enabled', 'mel_convention'} <= names['flag']
  assert {'ancestral', 'gla_grad', 'gla_clean_estimate', 'griffin_lim'} <= names['preset']
  assert {'6', '50', '6_glagrad', '25_fibonacci'} <= names['schedule']
  assert {'hifigan', 'lmnt'} <= names['convention']


# One fake name per kind of mention, each in a context the checker reads.
MUTATIONS = [
    ('config', 'Train it with `--config=experiments/configs/tiny_fake.py`.', 'tiny_fake'),
    ('config', 'The `configs/` (`tiny`, `espnet_fake`, `base`) configs.', 'espnet_fake'),
    ('config', 'On the `smallish` config\'s model.', 'smallish'),
    ('launcher', '```bash\npython -m experiments.train_fast --workdir=runs/x\n```', 'train_fast'),
    ('flag', 'Pass `--work_dir=runs/tiny`.', 'work_dir'),
    ('flag', 'Set `--config.sampling.gla.enable=True`.', 'gla.enable'),
    ('preset', 'GLA-Grad is the sampler preset `gla_grad_authors`.', 'gla_grad_authors'),
    ('preset', '| split | sampler | steps |\n|:---|:---|:---|\n| heldout | gla_fake | 6 |\n',
     'gla_fake'),
    ('schedule', 'The published schedule `6_lmnt` ends far from noise.', '6_lmnt'),
    ('schedule', '`python -m experiments.evaluate --schedules=6,7`', "'7'"),
    ('convention', 'Use `synthesize --mel_convention=` `hifigan`, `espnet3`, or a config file.',
     'espnet3'),
    ('file', 'See `wavegrad_jax/phases.py`.', 'phases.py'),
]


@pytest.mark.parametrize('kind,extra,fake', MUTATIONS, ids=[m[2] for m in MUTATIONS])
def test_a_fake_name_fails_the_check(kind, extra, fake):
  found = _checker['problems'](_readme() + '\n\n' + extra + '\n')
  assert len(found) == 1, found
  assert fake in found[0], found
  assert found[0].startswith({'convention': 'mel convention', 'preset': 'sampler preset'}.get(
      kind, kind)), found
