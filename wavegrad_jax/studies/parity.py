"""Torch-free parts of the parity study with the reference PyTorch WaveGrad (experiments.parity).

The reference is lmnt-com/wavegrad 0.1.5 (`wavegrad.model`). Its Conv1d weights are [out, in, k]
(channels-first) where ours (Flax) are [k, in, out]; its modules are named by position
(`downsample.N`, `film.N`, `upsample.N`). Everything here is numpy, so the library's tests can check
the layout map without torch.
"""
import glob
import os
import re
import zlib

import numpy as np

# The reference's UBlock dilations, in UBlock order (lowest rate, nearest the mel, first).
PEERS_DILATIONS = ((1, 2, 1, 2), (1, 2, 1, 2), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8))
# The paper's (Appendix A): long dilations on the three low-rate UBlocks, short on the last two.
PAPER_DILATIONS = ((1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 1, 2), (1, 2, 1, 2))

# Our UBlock conv names -> the reference UBlock's submodules.
_UBLOCK_CONVS = {'residual_conv': 'block1', 'conv_0': 'block2.0', 'conv_1': 'block2.1',
                 'conv_2': 'block3.0', 'conv_3': 'block3.1'}


def reference_variant(model_config, dilations=PEERS_DILATIONS):
  """Sets a `model` config section to the reference's variant, in place, and returns it.

  The reference encodes the noise level without the paper's x5000 scale, downsamples by
  nearest-neighbour decimation (F.interpolate), uses LeakyReLU(0.2) and float32, and puts the short
  dilations on the first two UBlocks (`dilations` lets the study swap in the paper's order).
  """
  model_config.upsample_dilations = tuple(tuple(d) for d in dilations)
  model_config.noise_encoding_scale = 1.0
  model_config.downsample_mode = 'interpolate'
  model_config.downsample_dilations = (1, 2, 4)
  model_config.leaky_relu_slope = 0.2
  model_config.dtype = 'float32'
  return model_config


def torch_conv_weight(kernel):
  """Flax Conv kernel [k, in, out] -> torch Conv1d weight [out, in, k] (a float32 copy)."""
  kernel = np.asarray(kernel, np.float32)
  if kernel.ndim != 3:
    raise ValueError(f'a 1-D conv kernel is [k, in, out], got shape {kernel.shape}')
  return np.ascontiguousarray(kernel.transpose(2, 1, 0))


def _conv_entries(conv, prefix, source):
  if set(conv) != {'kernel', 'bias'}:
    raise ValueError(f'{source}: expected a conv with kernel and bias, got {sorted(conv)}')
  return {f'{prefix}.weight': torch_conv_weight(conv['kernel']),
          f'{prefix}.bias': np.array(conv['bias'], np.float32)}


def reference_state_dict(params, film_sources):
  """Our WaveGrad parameters as the reference model's state dict (numpy arrays).

  Args:
    params: the Flax parameter tree of `wavegrad_jax.models.WaveGrad` (reference variant:
      downsample_mode 'interpolate', whose DBlocks have no strided conv).
    film_sources: `model.validate_topology(config.model, hop)`, the waveform stage feeding each
      UBlock's FiLM; the reference computes one FiLM per stage and feeds them in reverse, so UBlock
      j's FiLM is the reference's `film.{film_sources[j]}`.
  Returns:
    {reference parameter name: float32 array in torch layout}, every one of our leaves used once.
  """
  state = {}
  n_up = len(film_sources)
  for name, module in params.items():
    if name == 'waveform_conv':
      state.update(_conv_entries(module, 'downsample.0', name))
    elif name == 'mel_conv':
      state.update(_conv_entries(module, 'first_conv', name))
    elif name == 'output_conv':
      state.update(_conv_entries(module, 'last_conv', name))
    elif (m := re.fullmatch(r'dblocks_(\d+)', name)):
      prefix = f'downsample.{int(m.group(1)) + 1}'
      for conv_name, conv in module.items():
        if conv_name == 'residual_conv':
          state.update(_conv_entries(conv, f'{prefix}.residual_dense', f'{name}/{conv_name}'))
        elif (c := re.fullmatch(r'conv_(\d)', conv_name)):
          state.update(_conv_entries(conv, f'{prefix}.conv.{c.group(1)}', f'{name}/{conv_name}'))
        else:
          raise ValueError(f'{name}/{conv_name} has no counterpart in the reference DBlock (which '
                           "downsamples by interpolation): use model.downsample_mode='interpolate'")
    elif (m := re.fullmatch(r'films_(\d+)', name)):
      j = int(m.group(1))
      if j >= n_up:
        raise ValueError(f'{name}: film_sources lists only {n_up} UBlocks')
      for conv_name in ('input_conv', 'output_conv'):
        state.update(_conv_entries(module[conv_name], f'film.{film_sources[j]}.{conv_name}',
                                   f'{name}/{conv_name}'))
    elif (m := re.fullmatch(r'ublocks_(\d+)', name)):
      for conv_name, conv in module.items():
        if conv_name not in _UBLOCK_CONVS:
          raise ValueError(f'{name}/{conv_name} has no counterpart in the reference UBlock')
        state.update(_conv_entries(conv, f'upsample.{m.group(1)}.{_UBLOCK_CONVS[conv_name]}',
                                   f'{name}/{conv_name}'))
    else:
      raise ValueError(f'parameter group {name!r} has no counterpart in the reference WaveGrad')
  return state


def check_reference_topology(model_config, film_sources):
  """Raises unless the reference's wiring fits: one waveform stage per UBlock, fed in reverse.

  The reference computes a FiLM on every waveform stage (the input conv and each DBlock) and feeds
  stage k to UBlock n - 1 - k.
  """
  n_up, n_stages = len(model_config.upsample_factors), len(model_config.downsample_factors) + 1
  expected = tuple(range(n_up - 1, -1, -1))
  if n_stages != n_up or tuple(film_sources) != expected:
    raise ValueError(f'the reference wiring needs one waveform stage per UBlock, fed in reverse '
                     f'({expected}), but this topology has {n_stages} stages for {n_up} UBlocks '
                     f'and feeds {tuple(film_sources)}: use len(upsample_factors) - 1 downsample '
                     'factors, the upsample factors reversed without the last')


# -------------------------------------------------------------------------------------------- data


def speech_files(directory, pattern):
  """Sorted files under `directory` (recursively) whose base name matches the regex `pattern`."""
  files = sorted(f for f in glob.glob(os.path.join(os.path.expanduser(directory), '**', '*'),
                                      recursive=True)
                 if os.path.isfile(f) and re.search(pattern, os.path.basename(f)))
  if not files:
    raise FileNotFoundError(f'no file under {directory!r} matches {pattern!r}: install the '
                            'embedded corpus (apt-get install fillets-ng-data-cs) or set '
                            '--config.parity.data_dir / data_pattern')
  return files


def split_files(files, heldout_every, max_train, max_heldout):
  """Splits files by a stable hash of their base name: 1 in `heldout_every` is held out.

  Returns (train, heldout) lists, each in a stable hash order cut to at most max_train /
  max_heldout files (0: all), so a smaller study reads a subset that does not depend on disk order.
  """
  keyed = sorted((zlib.crc32(os.path.basename(f).encode()), f) for f in files)
  train = [f for h, f in keyed if h % heldout_every]
  heldout = [f for h, f in keyed if not h % heldout_every]
  if max_train:
    train = train[:max_train]
  if max_heldout:
    heldout = heldout[:max_heldout]
  return train, heldout


def cut_crops(audio, crop_samples, min_peak):
  """Cuts a waveform [T] into non-overlapping crops [N, crop_samples], dropping near-silent ones.

  Crops whose peak |sample| is below `min_peak` carry nothing to learn from; the tail shorter than a
  crop is dropped.
  """
  n = len(audio) // crop_samples
  crops = np.asarray(audio[:n * crop_samples], np.float32).reshape(n, crop_samples)
  return crops[np.max(np.abs(crops), axis=1) >= min_peak] if n else crops


# ------------------------------------------------------------------------------------- statistics


def relative_difference(a, b):
  """max |a - b| / max |b| (a scalar), the error measure of the forward check."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def curve_summary(curves):
  """Mean and spread of learning curves over seeds.

  Args:
    curves: [seeds, evaluations] held-out losses.
  Returns:
    {'mean': [E], 'std': [E]} with the sample standard deviation (ddof=1; 0 for one seed).
  """
  curves = np.asarray(curves, np.float64)
  std = curves.std(axis=0, ddof=1) if curves.shape[0] > 1 else np.zeros(curves.shape[1])
  return {'mean': curves.mean(axis=0).tolist(), 'std': std.tolist()}


def overlap(curves_a, curves_b):
  """Whether two sets of learning curves [seeds, evaluations] agree within their seed spread.

  Returns a dict: at each evaluation the gap between the seed means and the sum of the two seed
  standard deviations; `bands_overlap` is True when every gap is within that sum (the mean +- std
  bands intersect everywhere). Also the paired (same seed) differences, relative to the seed spread.
  With one seed the spread-based entries are None.
  """
  a, b = np.asarray(curves_a, np.float64), np.asarray(curves_b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f'curves of different shapes: {a.shape} and {b.shape}')
  sa, sb = curve_summary(a), curve_summary(b)
  gap = np.abs(np.asarray(sa['mean']) - np.asarray(sb['mean']))
  band = np.asarray(sa['std']) + np.asarray(sb['std'])
  paired = np.abs(a - b)
  spread = np.maximum(np.asarray(sa['std']), np.asarray(sb['std']))
  several = a.shape[0] > 1  # one seed has no spread to compare against.
  return {
      'mean_gap': gap.tolist(),
      'std_sum': band.tolist(),
      'bands_overlap': bool(np.all(gap <= band)) if several else None,
      'max_gap_over_std_sum': float(np.max(gap / np.maximum(band, 1e-30))) if several else None,
      'max_paired_abs_diff': float(paired.max()),
      'max_paired_rel_diff': float(np.max(paired / np.maximum(np.abs(b), 1e-30))),
      'max_paired_diff_over_seed_std': (float(np.max(paired.max(axis=0)
                                                     / np.maximum(spread, 1e-30)))
                                        if several else None),
  }


def compare_orders(curves_a, curves_b, final_evals):
  """Paired comparison of two sets of curves [seeds, evaluations] from the same seeds.

  Scores each run three ways, lower being better: 'area', the mean held-out loss over all
  evaluations after the first (the area under its curve, dominated by the first, steep part);
  'log_area', the mean of its logarithm (every phase of the curve weighs alike); 'final', the mean
  of the last `final_evals` evaluations. Returns per-seed scores, their mean and spread, and the
  paired differences a - b.
  """
  a, b = np.asarray(curves_a, np.float64), np.asarray(curves_b, np.float64)
  out = {}
  for name, score in (('area', lambda c: c[:, 1:].mean(axis=1)),
                      ('log_area', lambda c: np.log(c[:, 1:]).mean(axis=1)),
                      ('final', lambda c: c[:, -final_evals:].mean(axis=1))):
    sa, sb = score(a), score(b)
    diff = sa - sb
    out[name] = {
        'a': sa.tolist(), 'b': sb.tolist(),
        'a_mean': float(sa.mean()), 'a_std': float(sa.std(ddof=1)) if len(sa) > 1 else 0.0,
        'b_mean': float(sb.mean()), 'b_std': float(sb.std(ddof=1)) if len(sb) > 1 else 0.0,
        'paired_diff': diff.tolist(), 'paired_diff_mean': float(diff.mean()),
        'paired_diff_std': float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
        'a_lower_in_every_seed': bool(np.all(diff < 0)),
        'b_lower_in_every_seed': bool(np.all(diff > 0)),
    }
  return out
