"""The sampler comparison: a row per (split, sampler, schedule), finite or reported; its files."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.test_synthesize import SR, _config, _random_params, _speech_like
from wavegrad_jax.evaluation import compare
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.inference import synthesize

# Random weights diverge at a few steps: every compared sampler here bounds y or y0 (or uses no
# model). The model-free baseline runs once per split, whatever the schedules.
SAMPLERS = ('ancestral_clip_y', 'ancestral_clip_x0', 'gla_grad', 'griffin_lim')
WITH_SCHEDULE = SAMPLERS[:-1]


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
  config = _config()
  config.eval.write_references = False
  model = model_lib.build_model_from_config(config)
  params = _random_params(model, config)
  mel_fn = synthesize.make_log_mel_fn(config.audio)
  utterances = {}
  # Equal lengths: the spectral metrics compile once per evaluation.
  for split, count in (('heldout', 2), ('unseen', 1), ('train', 0)):
    utterances[split] = []
    for i in range(count):
      wave = _speech_like(int(0.6 * SR), seed=i)
      utterances[split].append({'id': f'{split}/utt{i}', 'speaker': split, 'audio': wave,
                                'mel': np.asarray(mel_fn(jnp.asarray(wave)))})
  # One length: the sampler compiles once per (split, sampler).
  schedule_list = evaluate.parse_schedule_list('list:1e-4,1e-2,0.2;linear:1e-4:0.2:3',
                                               config.sampling.named_schedules)
  out_dir = str(tmp_path_factory.mktemp('compare'))
  results = compare.compare(
      sampling.model_eps_fn(model), params, config, utterances, schedule_list, SAMPLERS,
      jax.random.PRNGKey(0), output_dir=out_dir, step=3, progress=False)
  return config, results, out_dir


def test_every_row_is_there_with_finite_metrics(compared):
  _, results, _ = compared
  names = list(results['schedules'])
  assert len(names) == 2
  expected = [(split, s, n) for split in ('heldout', 'unseen') for s in SAMPLERS
              for n in (names if s in WITH_SCHEDULE else [compare.NO_SCHEDULE])]
  assert [(r['split'], r['sampler'], r['schedule']) for r in results['rows']] == expected
  assert results['skipped_splits'] == ['train']
  for row in results['rows']:
    assert row['nonfinite_utterances'] == 0
    for metric in ('ls_mse', 'mrstft', 'pesq', 'stoi', 'rtf'):
      assert row[metric] is not None and np.isfinite(row[metric]), (row, metric)
  settings = results['samplers']
  assert settings['ancestral_clip_y']['clip'] == 1.0 and settings['ancestral_clip_y']['clip_x0'] == 0
  assert settings['ancestral_clip_x0']['clip_x0'] == 1.0 and not settings['ancestral_clip_x0']['gla']
  assert settings['gla_grad']['gla'] and settings['gla_grad']['gla_placement'] == 'mean'
  assert settings['gla_grad']['gla_magnitude'] == 'mel_pinv' and settings['gla_grad']['clip'] == 1
  assert settings['gla_grad']['gla_variant'] == 'authors'
  assert settings['griffin_lim']['algorithm'] == 'griffin_lim'
  assert settings['griffin_lim']['gla_iterations'] == 32 and not settings['griffin_lim']['gla']
  assert [r['num_steps'] for r in results['rows'] if r['sampler'] == 'griffin_lim'] == [0, 0]
  assert results['splits']['heldout']['num_utterances'] == 2
  assert results['schedules']['linear_1e-4_0.2_3'] == pytest.approx([1e-4, 0.1000500, 0.2])


def test_samplers_share_utterances_and_differ_only_by_the_sampler(compared):
  _, results, out_dir = compared
  rows = {(r['split'], r['sampler'], r['schedule']): r for r in results['rows']}
  for split in ('heldout', 'unseen'):
    ids = set()
    for s in SAMPLERS:
      with open(os.path.join(out_dir, split, s, 'per_utterance.jsonl')) as f:
        ids.add(tuple(dict.fromkeys(json.loads(line)['id'] for line in f)))
    assert len(ids) == 1 and list(ids)[0][:len(results['splits'][split]['ids'])] == tuple(
        results['splits'][split]['ids'])
  # Same noise and utterances: the two clippings give different samples, so different metrics.
  first = results['rows'][0]['schedule']
  assert rows[('heldout', 'ancestral_clip_y', first)]['mrstft'] != rows[
      ('heldout', 'ancestral_clip_x0', first)]['mrstft']


def test_table_and_results_files(compared):
  _, results, out_dir = compared
  header = compare.header_line(
      results, workdir='w', device='cpu', max_seconds=3.0,
      command=compare.command_line('experiments.compare_samplers', ['x', '--a=1 2']))
  table = compare.write_outputs(results, out_dir, header)
  with open(os.path.join(out_dir, 'table.md')) as f:
    assert f.read() == table
  lines = table.splitlines()
  assert lines[0] == header and "'--a=1 2'" in header and 'step 3' in header
  assert lines[2].startswith('| split | sampler | steps | LS-MSE | MR-STFT | PESQ | STOI | RTF |')
  body = [l for l in lines[4:] if l.startswith('| ')]
  assert len(body) == 14 and 'n/a' not in table
  assert body[1].startswith('| heldout | ancestral_clip_y | 3 (linear_1e-4_0.2_3) | ')
  assert body[6].startswith('| heldout | griffin_lim | - | ')
  assert 'griffin_lim: Griffin-Lim alone (no model) from the starting noise, 32 iterations' in header
  assert ("gla_grad: GLA on the mean at steps first:3, 32 iterations of the authors' Griffin-Lim "
          'loop, momentum 0.1') in header
  assert 'rescaled to a 0.95 peak, y clamped to ±1' in header
  assert table.rstrip().endswith('Skipped (no utterances): train.')
  with open(os.path.join(out_dir, 'results.json')) as f:
    saved = json.load(f)
  assert len(saved['rows']) == 14 and saved['step'] == 3


def test_nonfinite_values_are_reported():
  results = {'splits': {'heldout': {'num_utterances': 4}}, 'skipped_splits': [], 'rows': [
      {'split': 'heldout', 'sampler': 'gla', 'schedule': 'best_N6', 'num_steps': 6,
       'ls_mse': None, 'mrstft': float('nan'), 'pesq': 1.5, 'stoi': 0.5, 'rtf': 0.2,
       'nonfinite_utterances': 1}]}
  table = compare.markdown_table(results)
  assert '| heldout | gla | 6 (best_N6) [1] | n/a | n/a | 1.50 | 0.500 | 0.200 |' in table
  assert '1. heldout / gla / 6 (best_N6) steps: 1 of 4 utterances non-finite' in table


def test_unknown_sampler_is_refused():
  with pytest.raises(ValueError, match="unknown sampler preset 'ddpm': choose one of"):
    sampling.preset_from_config(_config(), 'ddpm')
