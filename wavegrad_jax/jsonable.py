"""Plain-JSON views of results and configs: NaN to null, and where two nested values differ."""
import json
import math
import os


def finite(obj):
  """`obj` with every NaN / inf float replaced by None, recursively, so it dumps as standard JSON.

  Args:
    obj: nested dicts, lists, tuples (returned as lists) and scalars.
  Returns:
    the same structure with non-finite floats as None.
  """
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite(v) for v in obj]
  return obj


def write(path, obj):
  """Writes `obj` (non-finite floats as null, indent 2) to the JSON file `path`, making its folder."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(finite(obj), f, indent=2)


def short(value, limit=120):
  """`value` as JSON text, cut to `limit` characters with '...'."""
  text = json.dumps(value)
  return text if len(text) <= limit else text[:limit - 3] + '...'


def differences(old, new, *, old_name, new_name='this run', root='top level', ignore=(),
                _path=''):
  """Where two JSON-able values (configs, headers) differ, one line per differing leaf.

  Tuples and lists compare alike. Dicts are compared key by key, recursively; the keys of a dict
  found on one side only share one line.

  Args:
    old: the recorded value (a workdir's config, a results file's header, a checkpoint's config).
    new: the value it is checked against (this run's).
    old_name: where `old` comes from, as in '<old> in {old_name} vs <new> now' ('the workdir').
    new_name: where `new` comes from, in the 'only in ...' lines.
    root: the name of the whole value when it differs at the top.
    ignore: dotted paths (e.g. 'model.dtype') left out of the comparison.
  Returns:
    list of 'dotted.path: <old> in {old_name} vs <new> now' (values as JSON) and
    'dotted.path: a, b only in {old_name | new_name}' strings; empty when equal.
  """
  if not _path:
    old, new = (json.loads(json.dumps(v, default=list)) for v in (old, new))
  if _path in ignore:
    return []
  if isinstance(old, dict) and isinstance(new, dict):
    out = []
    for k in sorted(set(old) & set(new), key=str):
      out.extend(differences(old[k], new[k], old_name=old_name, new_name=new_name, root=root,
                             ignore=ignore, _path=f'{_path}.{k}' if _path else str(k)))
    for keys, where in ((set(old) - set(new), old_name), (set(new) - set(old), new_name)):
      keys = sorted(k for k in map(str, keys) if (f'{_path}.{k}' if _path else k) not in ignore)
      if keys:
        out.append(f'{_path or root}: {", ".join(keys)} only in {where}')
    return out
  if old == new:
    return []
  return [f'{_path or root}: {short(old)} in {old_name} vs {short(new)} now']
