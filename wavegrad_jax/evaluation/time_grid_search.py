"""The time-grid search of a flow-matching run: which N-step grid from t = 0 to 1 vocodes best.

The counterpart of `schedule_search` (which searches the betas of the paper's process) for
process 'flow': candidates are scored by the same scorer (`schedule_scoring.make_ls_mse_scorer`:
LS-MSE of held-out segments vocoded with every candidate at once, the same noise for all). The
candidates of a budget N are the power family t_i = (i / N)^p for every p in
`search.flow_powers` (p > 1 puts the steps near the source, p < 1 near the data), then
`search.coordinate_max_sweeps` sweeps that move each interior time of the best grid to 1/4, 1/2
and 3/4 of the way towards each neighbour, keeping a move when it scores lower. A budget is a
few dozen syntheses, so the search is not checkpointed: a killed search is rerun.

Writes to the output folder, per budget N: best_N{N}.json ({"times": [...], "score", ...},
readable wherever a time grid is: `processes.flow.parse_time_grid`) and ranked_N{N}.json (every
scored grid, best first), and summary.json.
"""
import json
import os

import numpy as np


def power_grid(num_steps, power):
  """[N + 1] times (i / N)^power, float64."""
  return np.linspace(0.0, 1.0, int(num_steps) + 1) ** float(power)


def _moves(times):
  """Grids that move one interior time 1/4, 1/2 or 3/4 of the way towards a neighbour."""
  out = []
  for i in range(1, len(times) - 1):
    for neighbour in (times[i - 1], times[i + 1]):
      for fraction in (0.25, 0.5, 0.75):
        moved = times.copy()
        moved[i] = times[i] + fraction * (neighbour - times[i])
        if np.all(np.diff(moved) > 1e-6):
          out.append(moved)
  return out


def search_time_grid(scorer, num_steps, powers, sweeps):
  """Searches N-step grids; returns {'num_steps', 'best_times', 'best_score', 'ranked', 'scorings'}.

  Args:
    scorer: times [K, N + 1] -> [K] scores (lower is better).
    num_steps: N >= 1.
    powers: exponents of the power family to start from.
    sweeps: coordinate sweeps after it (0: the power family alone).
  """
  scored = {}

  def score(grids):
    fresh = [g for g in grids if tuple(np.round(g, 6)) not in scored]
    if fresh:
      values = scorer(np.stack(fresh))
      for g, v in zip(fresh, values):
        scored[tuple(np.round(g, 6))] = (float(v), g)
    return [scored[tuple(np.round(g, 6))][0] for g in grids]

  family = [power_grid(num_steps, p) for p in powers] if num_steps > 1 else [power_grid(1, 1)]
  values = score(family)
  best = family[int(np.argmin(values))]
  best_score = min(values)
  for _ in range(int(sweeps) if num_steps > 1 else 0):
    candidates = _moves(best)
    if not candidates:
      break
    values = score(candidates)
    if min(values) >= best_score:
      break
    best, best_score = candidates[int(np.argmin(values))], min(values)
  ranked = sorted(scored.values(), key=lambda x: x[0])
  return {'num_steps': int(num_steps), 'best_times': [float(t) for t in best],
          'best_score': float(best_score) if np.isfinite(best_score) else None,
          'scorings': len(scored),
          'ranked': [{'score': s if np.isfinite(s) else None, 'times': [float(t) for t in g]}
                     for s, g in ranked]}


def search_budgets(scorer, steps, powers, sweeps, output_dir, fingerprint=None):
  """`search_time_grid` for each budget; writes the files of the module docstring.

  Returns:
    {'budgets': [one summary per N without its ranked list]}.
  """
  os.makedirs(output_dir, exist_ok=True)
  budgets = []
  for n in steps:
    result = search_time_grid(scorer, n, powers, sweeps)
    with open(os.path.join(output_dir, f'best_N{n}.json'), 'w') as f:
      json.dump({'times': result['best_times'], 'score': result['best_score'],
                 'fingerprint': fingerprint}, f, indent=2)
    with open(os.path.join(output_dir, f'ranked_N{n}.json'), 'w') as f:
      json.dump(result['ranked'], f, indent=2)
    result['paths'] = {'best': os.path.join(output_dir, f'best_N{n}.json')}
    budgets.append({k: v for k, v in result.items() if k != 'ranked'})
  out = {'budgets': budgets}
  with open(os.path.join(output_dir, 'summary.json'), 'w') as f:
    json.dump(out, f, indent=2)
  return out
