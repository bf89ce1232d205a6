"""Every launcher against a table of bad invocations: a short message, no traceback, nothing made.

Each case runs the launcher's `cli.run(main)` in a forked child of one driver process
(tests/launcher_driver.py), on 8 fake CPU devices, in a fresh folder holding a copy of the
committed run tests/data/prechange_run as the inference commands' workdir (its data settings point
nowhere, so a case that got past every check would fail on the data instead of doing the work).
For each case: a non-zero exit, at most two lines of output, the expected message, no 'Traceback',
and no file created or changed in the folder.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest
import soundfile

from tests import launcher_driver

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(REPO, 'tests', 'data', 'prechange_run')
TINY = os.path.join(REPO, 'experiments', 'configs', 'tiny.py')
# Somewhere no file can be created, even by root: sysfs, or a folder without write permission.
UNWRITABLE = '/sys/wavegrad_test_output' if os.geteuid() == 0 else '{sb}/locked/out'

_MAIN = ['--config=' + TINY, '--workdir={sb}/run']
_RUN = ['--workdir={sb}/run_copy']

# (name, launcher module, arguments, expected message as a regular expression).
CASES = [
    # Training.
    ('unknown field', 'main', _MAIN + ['--config.train.nonexistent=1'],
     r"--config.train.nonexistent: train has no field 'nonexistent'"),
    ('misspelt field', 'main', _MAIN + ['--config.train.batch_sise=4'],
     r'did you mean train.batch_size\?'),
    ('unknown section', 'main', _MAIN + ['--config.trian.batch_size=4'],
     r"the config has no field 'trian'; did you mean train"),
    ('field of a value', 'main', _MAIN + ['--config.train.batch_size.x=4'],
     r'train.batch_size is a value, not a section'),
    ('wrong type', 'main', _MAIN + ['--config.train.batch_size=abc'],
     r"--config.train.batch_size=abc: invalid literal for int"),
    ('negative batch', 'main', _MAIN + ['--config.train.batch_size=-4'],
     r'train.batch_size must be >= 1, got -4'),
    ('batch over devices', 'main', _MAIN + ['--config.train.batch_size=6'],
     r'train.batch_size=6 .*8'),
    ('up-sampling vs hop', 'main', _MAIN + ['--config.model.upsample_factors=(4,4,4,2)'],
     r'upsample factors \(4, 4, 4, 2\) multiply to 128, but the mel hop is 256'),
    ('up-sampling layers', 'main', _MAIN + ['--config.model.upsample_factors=(16,16)'],
     r'upsample_channels has 4 entries but upsample_factors has 2'),
    ('bad lr schedule', 'main', _MAIN + ['--config.train.lr_schedule=cosin'],
     r"train.lr_schedule must be 'constant' or 'cosine'"),
    ('bad mesh', 'main', _MAIN + ['--config.mesh.shape=(3,)'], r'mesh'),
    ('bad schedule', 'main', _MAIN + ['--config.train.sample_schedule=linear:1'],
     r'linear'),
    ('missing config file', 'main', ['--config={sb}/nowhere.py', '--workdir={sb}/run'],
     r'--config=.*nowhere.py: no such config file'),
    ('missing config flag', 'main', ['--workdir={sb}/run'], r'--config'),
    ('unknown flag', 'main', _MAIN + ['--workdr=x'], r"Unknown command line flag 'workdr'"),
    ('positional argument', 'main', _MAIN + ['extra'], r'unexpected arguments'),
    ('missing data folder', 'main', _MAIN + ['--config.data.dir={sb}/nowhere'],
     r'Fillets sound folder .*nowhere does not exist'),
    ('empty data folder', 'main', _MAIN + ['--config.data.source=folder',
                                            '--config.data.dir={sb}/adir'],
     r'Audio folder .*adir holds no'),
    ('unknown data source', 'main', _MAIN + ['--config.data.source=vctk'],
     r"config.data.source must be one of \['fillets', 'folder', 'ljspeech', 'paired'\]"),
    ('workdir is a file', 'main', ['--config=' + TINY, '--workdir={sb}/afile'],
     r'the workdir .*afile is a file'),
    ('workdir under a file', 'main', ['--config=' + TINY, '--workdir={sb}/afile/run'],
     r'cannot be created: .*afile is a file'),
    ('unwritable workdir', 'main', ['--config=' + TINY, '--workdir=' + UNWRITABLE],
     r'is not writable'),
    # Evaluation.
    ('no such workdir', 'evaluate', ['--workdir={sb}/nowhere'], r'--workdir=.*nowhere: no such'),
    ('not a run', 'evaluate', ['--workdir={sb}/adir'], r'no config.json and no checkpoint'),
    ('bad schedule', 'evaluate', _RUN + ['--schedules=6,lineer:1'],
     r"--schedules=6,lineer:1: .*lineer"),
    ('duplicate schedules', 'evaluate', _RUN + ['--schedules=6,6'], r'both be called'),
    ('unknown sampling field', 'evaluate', _RUN + ['--config.sampling.etta=0'],
     r"sampling has no field 'etta'; did you mean sampling.eta\?"),
    ('model override', 'evaluate', _RUN + ['--config.model.mel_channels=4'],
     r'--config.model.mel_channels: .*override only the sampling, eval, search, compile sections'),
    ('bad step', 'evaluate', _RUN + ['--step=last'], r"--step=last: give ''"),
    ('missing step', 'evaluate', _RUN + ['--step=5'], r'holds no checkpoint 5; it has \[100\]'),
    ('bad split', 'evaluate', _RUN + ['--split=train'], r'--split'),
    ('output is a file', 'evaluate', _RUN + ['--output_dir={sb}/afile'],
     r'--output_dir=.*afile is a file'),
    ('unwritable output', 'evaluate', _RUN + ['--output_dir=' + UNWRITABLE], r'is not writable'),
    ('bad algorithm', 'evaluate', _RUN + ['--config.sampling.algorithm=bogus'],
     r'--config.sampling: sampling.algorithm must be one of'),
    ('negative eta', 'evaluate', _RUN + ['--config.sampling.eta=-1'],
     r'--config.sampling: eta must lie in \[0, 1\]'),
    ('bad gla steps', 'evaluate', _RUN + ['--config.sampling.gla.steps=some'],
     r"--config.sampling: GLA steps must be 'all'"),
    # Schedule search.
    ('bad noise scale', 'search_schedules', _RUN + ['--config.sampling.noise_scale=loud'],
     r'--config.sampling: noise_scale must be one of'),
    ('zero steps', 'search_schedules', _RUN + ['--steps=0'], r'--steps=0: give comma-separated'),
    ('bad method', 'search_schedules', _RUN + ['--config.search.method=gird'],
     r"search.method='gird': choose one of"),
    ('huge grid', 'search_schedules', _RUN + ['--method=grid'],
     r'531,441 candidates, more than search.max_grid_candidates=10,000'),
    ('output is a file', 'search_schedules', _RUN + ['--output_dir={sb}/afile'], r'is a file'),
    # Sampler comparison.
    ('unknown sampler', 'compare_samplers', _RUN + ['--samplers=ddim'], r"--samplers: unknown"),
    ('unknown split', 'compare_samplers', _RUN + ['--splits=test'], r'--splits: unknown'),
    ('duplicate schedules', 'compare_samplers', _RUN + ['--schedules=25,25'], r'both be called'),
    ('output is a file', 'compare_samplers', _RUN + ['--output={sb}/afile'], r'is a file'),
    ('bad algorithm', 'compare_samplers', _RUN + ['--config.sampling.algorithm=bogus'],
     r'--config.sampling: sampling.algorithm must be one of'),
    ('curve: unknown split', 'learning_curve',
     ['--runs={sb}/run_copy', '--splits=test', '--output={sb}/c.json'], r'--splits: unknown'),
    ('curve: no such run', 'learning_curve', ['--runs={sb}/nowhere', '--output={sb}/c.json'],
     r'--runs: .*nowhere is not a folder'),
    ('curve: same labels', 'learning_curve',
     ['--runs={sb}/run_copy,{sb}/x/run_copy', '--output={sb}/c.json'], r'distinct labels'),
    ('curve: output not json', 'learning_curve', ['--runs={sb}/run_copy', '--output={sb}/c.txt'],
     r'give a .json path'),
    # Synthesis (its output checks are tests/test_synthesize.py's).
    ('missing input', 'synthesize', _RUN + ['--input={sb}/nothing.wav'], r'no such file'),
    ('missing workdir flag', 'synthesize', ['--input={sb}/afile'], r'--workdir'),
    ('missing mel stats', 'synthesize', _RUN + ['--input={sb}/a.wav', '--mel_convention=espnet',
                                                '--mel_stats={sb}/nostats.npy'],
     r'--mel_stats=.*nostats.npy: no such file'),
    ('bad gla steps', 'synthesize', _RUN + ['--input={sb}/a.wav', '--config.sampling.gla.steps=x'],
     r"--config.sampling: GLA steps must be 'all'"),
    ('bad noise scale', 'synthesize', _RUN + ['--input={sb}/a.wav',
                                              '--config.sampling.noise_scale=loud'],
     r'--config.sampling: noise_scale must be one of'),
    # Benchmarks.
    ('unknown config', 'benchmark', ['--benchmark=tinny:4', '--output={sb}/b.json'],
     r"no config 'tinny' in experiments/configs; did you mean tiny"),
    ('zero batch', 'benchmark', ['--benchmark=tiny:0', '--output={sb}/b.json'],
     r'batch sizes >= 1'),
    ('output is a folder', 'benchmark', ['--benchmark=tiny:4', '--output={sb}/adir'],
     r'--output=.*adir is a folder'),
    ('missing output', 'benchmark', [], r'--output'),
    ('bad spec', 'benchmark_sampler', ['--rtf=tiny:6', '--output={sb}/b.json'],
     r'expected CONFIG followed by 2'),
    ('output under a file', 'benchmark_sampler', ['--output={sb}/afile/b.json'],
     r'cannot be created: .*afile is a file'),
    ('negative seconds', 'benchmark_perceptual', ['--seconds=-1', '--output={sb}/b.json'],
     r'--seconds wants positive'),
]


def _tree(root):
  """{relative path: (size, mtime) or 'dir'} of everything under `root`."""
  out = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      out[os.path.relpath(os.path.join(folder, name), root)] = 'dir'
    for name in files:
      st = os.stat(os.path.join(folder, name))
      out[os.path.relpath(os.path.join(folder, name), root)] = (st.st_size, st.st_mtime_ns)
  return out


@pytest.fixture(scope='module')
def outcomes(tmp_path_factory):
  """(case, sandbox before, sandbox after, result) for every case, run by one driver."""
  cases, sandboxes = [], []
  for i, (_, module, args, _) in enumerate(CASES):
    sandbox = str(tmp_path_factory.mktemp(f'case{i}'))
    with open(os.path.join(sandbox, 'afile'), 'w') as f:
      f.write('not a folder\n')
    os.mkdir(os.path.join(sandbox, 'adir'))
    soundfile.write(os.path.join(sandbox, 'a.wav'), np.zeros(2205, np.float32), 22050)
    os.mkdir(os.path.join(sandbox, 'locked'), 0o555)
    shutil.copytree(RUN, os.path.join(sandbox, 'run_copy'))
    config_path = os.path.join(sandbox, 'run_copy', 'config.json')
    with open(config_path) as f:
      config = json.load(f)
    config['data'].update(dir=os.path.join(sandbox, 'no_data'),
                          tfds_dir=os.path.join(sandbox, 'no_tfds'))
    with open(config_path, 'w') as f:
      json.dump(config, f)
    cases.append({'module': f'experiments.{module}', 'cwd': sandbox,
                  'args': [a.replace('{sb}', sandbox) for a in args]})
    sandboxes.append(sandbox)
  before = [_tree(s) for s in sandboxes]
  results = launcher_driver.drive(
      cases, env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'})
  after = [_tree(s) for s in sandboxes]
  for s in sandboxes:
    os.chmod(os.path.join(s, 'locked'), 0o755)
    shutil.rmtree(s)
  return list(zip(CASES, before, after, results))


@pytest.mark.parametrize('index', range(len(CASES)),
                         ids=[f'{c[1]}: {c[0]}' for c in CASES])
def test_bad_invocation_fails_fast_with_one_message(outcomes, index):
  (name, module, args, expected), before, after, result = outcomes[index]
  output = (result['stdout'] + result['stderr']).strip()
  lines = [line for line in output.splitlines() if line.strip()]
  assert result['status'] != 0, f'{module} {args} succeeded:\n{output}'
  assert 'Traceback' not in output, output
  assert 1 <= len(lines) <= 2, f'{len(lines)} lines:\n{output}'
  assert re.search(expected, output), f'expected /{expected}/ in:\n{output}'
  assert after == before, f'{name}: files changed: {set(after) ^ set(before)}'
