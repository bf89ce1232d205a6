"""The resumable state of a schedule search: scores on disk, and the fingerprint that guards them.

Scores stream to a JSONL file as they are made (`ScoreStore`); a rerun with the same file scores
nothing twice, and a file whose header (`search_fingerprint`: checkpoint, segments, frontend,
sampler, LS-MSE, seed) differs is refused rather than mixed in (`SearchResumeError`).
`Evaluator` answers the search methods (`schedule_candidates`) through the store.
"""
import hashlib
import json
import math
import os
import time

import jax
import numpy as np

from wavegrad_jax import jsonable
from wavegrad_jax.evaluation.schedule_candidates import candidate_key


class SearchResumeError(ValueError):
  """A results file written by a different scorer (other model, data or noise) than this one."""



class ScoreStore:
  """Scores of candidate schedules, appended to a JSONL file as they are made.

  Line 1 is {"header": {...}} describing the scorer; then one line per candidate:
  {"betas": [...], "score": float or null (invalid / NaN), plus descriptive fields}.
  """

  def __init__(self, path, header):
    self.path = path
    self.scores = {}
    header = json.loads(json.dumps(header))  # normalise tuples etc. to what the file holds
    if os.path.exists(path) and os.path.getsize(path) > 0:
      with open(path) as f:
        lines = f.read().splitlines()
      try:
        first = json.loads(lines[0])
      except json.JSONDecodeError:
        first = {}
      if first.get('header') != header:
        # Its scores were made under other settings: mixing them in would rank unlike with unlike.
        diffs = jsonable.differences(first.get('header'), header, old_name='the file',
                                     root='header')
        raise SearchResumeError(
            f'{path} was written by a different search setup, so its scores cannot be reused; '
            'it differs in\n  ' + '\n  '.join(diffs) +
            '\nUse another --output_dir, or delete the file to start over.')
      for line in lines[1:]:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut short by a kill: that candidate is simply scored again.
        score = rec['score']
        self.scores[candidate_key(rec['betas'])] = math.inf if score is None else float(score)
      self._file = open(path, 'a')
      if not lines[-1:] or not lines[-1].endswith('}'):
        self._file.write('\n')
    else:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      self._file = open(path, 'w')
      self._file.write(json.dumps({'header': header}) + '\n')
      self._file.flush()

  def get(self, key):
    """The stored score of a candidate keyed by its betas tuple, or None if never scored."""
    return self.scores.get(key)

  def add(self, records):
    """Stores and appends records (dicts with 'betas' and 'score'); flushed to disk at once."""
    for rec in records:
      score = rec['score']
      self.scores[candidate_key(rec['betas'])] = score
      rec = dict(rec, score=None if not math.isfinite(score) else score)
      self._file.write(json.dumps(rec) + '\n')
    self._file.flush()
    os.fsync(self._file.fileno())

  def close(self):
    """Closes the file (every record is already on disk)."""
    self._file.close()


class Evaluator:
  """Scores candidates through the store: stored ones are free, new ones go to the scorer."""

  def __init__(self, scorer, store, space, chunk_size, method):
    self.scorer, self.store, self.space = scorer, store, space
    self.chunk_size = max(1, int(chunk_size))
    self.method = method
    self.scorings = 0      # candidates sent to the scorer by this run.
    self.reused = 0        # candidate visits answered from the store (file or this run).
    self.visited = {}      # key -> (score, idx), in first-visit order.

  def __call__(self, candidates):
    """Scores a list of option-index tuples; returns their scores (inf for invalid)."""
    betas = [self.space.betas(c) for c in candidates]
    keys = [candidate_key(b) for b in betas]
    todo, todo_keys = [], set()
    for c, b, k in zip(candidates, betas, keys):
      if self.store.get(k) is None and k not in todo_keys:
        todo.append((c, b, k))
        todo_keys.add(k)
      elif k not in todo_keys:
        self.reused += 1
    invalid = [t for t in todo if np.any(t[1] >= 1.0)]
    if invalid:  # a variance >= 1 is no schedule; recorded so that it is never tried again.
      self.store.add([self._record(c, b, math.inf) for c, b, _ in invalid])
    todo = [t for t in todo if not np.any(t[1] >= 1.0)]
    for start in range(0, len(todo), self.chunk_size):
      chunk = todo[start:start + self.chunk_size]
      scores = np.asarray(self.scorer(np.stack([b for _, b, _ in chunk])), np.float64)
      if scores.shape != (len(chunk),):
        raise ValueError(f'the scorer returned shape {scores.shape} for {len(chunk)} candidates')
      scores = np.where(np.isfinite(scores), scores, np.inf)
      self.scorings += len(chunk)
      self.store.add([self._record(c, b, float(s)) for (c, b, _), s in zip(chunk, scores)])
    out = []
    for c, k in zip(candidates, keys):
      score = self.store.get(k)
      self.visited.setdefault(k, (score, c))
      out.append(score)
    return out

  def _record(self, idx, betas, score):
    m, e = self.space.describe(idx)
    return {'betas': [float(b) for b in betas], 'score': score, 'mantissas': m, 'exponents': e,
            'method': self.method, 'time': round(time.time(), 3)}


# ------------------------------------------------------------------------------- fingerprint


def array_digest(*arrays):
  """SHA-256 (hex) of arrays' dtypes, shapes and bytes, in order: equal iff the data are equal.

  Args:
    *arrays: numpy / JAX arrays, or pytrees of them (leaves in `jax.tree.leaves` order).
  Returns:
    64-character hex string.
  """
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(list(arrays)):
    leaf = np.ascontiguousarray(np.asarray(leaf))
    h.update(f'{leaf.dtype.str}{leaf.shape}'.encode())
    h.update(leaf.tobytes())
  return h.hexdigest()


def search_fingerprint(config, *, step, params, mels, references, segment_ids):
  """Everything an LS-MSE score of `make_ls_mse_scorer` depends on, for the results-file header.

  A results file is resumed only when this matches exactly, so scores made under other settings
  are never ranked with new ones; `jsonable.differences` names what changed. The search method,
  grid and chunk size are left out: they choose which candidates are scored, not their scores.

  Args:
    config: the full config the scorer was built from (audio, model, sampling incl. gla, eval's
      LS-MSE and ema, search's split / num_utterances / segment_frames / seed).
    step: the checkpoint step the parameters come from.
    params: those parameters (digested: another run's checkpoint at the same step differs).
    mels: [B, F, n_mels] held-out segments the scorer vocodes.
    references: [B, F * hop] their audio.
    segment_ids: the B utterance ids the segments were cut from.
  Returns:
    JSON-able dict with sections checkpoint, segments, audio, model, sampling, ls_mse, seed.
  """
  s, e = config.search, config.eval
  sampling_cfg = {k: v for k, v in config.sampling.to_dict().items()
                  if k not in ('schedule', 'named_schedules')}
  if not sampling_cfg['gla']['enabled']:
    # Disabled GLA options change no score; recording them would refuse resumes for nothing.
    sampling_cfg['gla'] = {'enabled': False}
  return dict(
      checkpoint=dict(step=step, ema=bool(e.ema), params_sha256=array_digest(params)),
      segments=dict(split=s.split, num_utterances=int(s.num_utterances),
                    segment_frames=int(s.segment_frames), ids=[str(i) for i in segment_ids],
                    sha256=array_digest(np.asarray(mels, np.float32),
                                        np.asarray(references, np.float32))),
      audio=config.audio.to_dict(), model=config.model.to_dict(), sampling=sampling_cfg,
      ls_mse=dict(window_hops=int(e.ls_mse_window_hops), hop_divisor=int(e.ls_mse_hop_divisor),
                  eps=float(e.ls_mse_eps)),
      seed=int(s.seed))
