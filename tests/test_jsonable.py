"""The JSON helpers: NaN to null, and the one way configs and headers are compared."""
import json
import math

from wavegrad_jax import jsonable


def test_finite_turns_nan_and_inf_into_null_everywhere():
  value = {'a': [1.0, math.nan, (math.inf, 2)], 'b': {'c': -math.inf, 'd': 'x'}, 'e': 3}
  out = jsonable.finite(value)
  assert out == {'a': [1.0, None, [None, 2]], 'b': {'c': None, 'd': 'x'}, 'e': 3}
  json.loads(json.dumps(out, allow_nan=False))


def test_differences_name_each_leaf_and_one_sided_keys():
  old = {'model': {'dtype': 'float32', 'factors': (4, 4), 'width': 16, 'gone': 1}, 'seed': 0}
  new = {'model': {'dtype': 'bfloat16', 'factors': [4, 4], 'width': 32, 'added': 2}, 'seed': 0}
  assert jsonable.differences(old, new, old_name='the workdir', ignore=('model.dtype',)) == [
      'model.width: 16 in the workdir vs 32 now', 'model: gone only in the workdir',
      'model: added only in this run']
  assert jsonable.differences(old, old, old_name='x') == []
  assert jsonable.differences('a', 'b', old_name='the file', root='header') == [
      'header: "a" in the file vs "b" now']
