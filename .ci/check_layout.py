#!/usr/bin/env python3
"""Checks the library's layout (README "Layout"); prints one line per problem, exits 1 on any.

  python .ci/check_layout.py

What it checks, by reading the source (ast), without importing anything:
  1. No module of wavegrad_jax/ over MAX_MODULE_LINES lines; no launcher in experiments/ (every
     experiments/*.py, configs apart) over MAX_LAUNCHER_LINES.
  2. Imports run down the layers only: a module of package P imports only packages of a lower
     rank in LAYERS (or P itself, or the shared leaves); no import cycle between modules.
  3. absl flags are parsed by launchers only: no `absl.flags` import in wavegrad_jax/.
  4. The config is read at the edges: in the packages below the trainer (BELOW_TRAINER), only a
     module named options.py may take a ConfigDict (a parameter named config, *_config or
     *_cfg, or annotated ConfigDict) or import ml_collections; every other function there takes
     typed options or explicit arguments, apart from a typed option class's own `from_config`
     classmethod (as `SamplerOptions.from_config`), which reads its section into fields. In options.py, a function that takes a config is a
     `from_config` constructor or a thin `*_from_config` adapter (at most ADAPTER_LINES lines of
     code after its docstring:
     build the typed options, call the typed function).
tests/test_layout.py runs it in CI and shows each check catching a violation.
"""
import ast
import os
import sys

MAX_MODULE_LINES = 600
MAX_LAUNCHER_LINES = 150
# Package -> rank; a module may import packages of lower rank only (its own package aside).
LAYERS = {
    'errors': 0, 'jsonable': 0,
    'audio': 1,
    'models': 2, 'diffusion': 2, 'data': 2,
    'sampling': 3,
    'processes': 4,
    'training': 5,
    'inference': 6,
    'evaluation': 7,
    'studies': 8,
}
BELOW_TRAINER = ('audio', 'models', 'diffusion', 'data', 'sampling', 'processes',
                 'training/parallel.py', 'training/reporting.py', 'training/compilation.py')
EDGE_MODULE = 'options.py'
ADAPTER_LINES = 12


def _modules(root, package='wavegrad_jax'):
  for dirpath, _, names in os.walk(os.path.join(root, package)):
    for name in sorted(names):
      if name.endswith('.py'):
        path = os.path.join(dirpath, name)
        yield os.path.relpath(path, root), path


def _dotted(rel):
  d = rel[:-3].replace(os.sep, '.')
  return d[:-len('.__init__')] if d.endswith('.__init__') else d


def _package(dotted):
  parts = dotted.split('.')
  return parts[1] if len(parts) > 1 else ''


def _imports(tree, dotted, is_init):
  """Dotted wavegrad_jax modules a module imports (from X import y: X.y when y is a module)."""
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(a.name, node.lineno) for a in node.names if a.name.startswith('wavegrad_jax')]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = dotted.split('.') if is_init else dotted.split('.')[:-1]
        base = base[:len(base) - node.level + 1]
        mod = '.'.join(base + ([node.module] if node.module else []))
      else:
        mod = node.module or ''
      if mod.startswith('wavegrad_jax'):
        for a in node.names:
          # X.y: the module y when there is one (the cycle check resolves it), else X.
          out.append((f'{mod}.{a.name}', node.lineno))
  return out


def _config_params(fn):
  args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
  hits = []
  for a in args:
    ann = ast.unparse(a.annotation) if a.annotation is not None else ''
    if (a.arg == 'config' or a.arg.endswith('_config') or a.arg.endswith('_cfg')
        or 'ConfigDict' in ann):
      hits.append(a.arg)
  return hits


def _is_options_constructor(fn):
  """A `from_config` classmethod: the typed option class's own reader of its config section."""
  return fn.name == 'from_config' and any(
      isinstance(d, ast.Name) and d.id == 'classmethod' for d in fn.decorator_list)


def _below_trainer(rel):
  inner = rel[len('wavegrad_jax/'):]
  return any(inner == b or inner.startswith(b + '/') for b in BELOW_TRAINER)


def problems(root):
  out = []
  graph = {}
  for rel, path in _modules(root):
    text = open(path, encoding='utf-8').read()
    lines = text.count('\n')
    if lines > MAX_MODULE_LINES:
      out.append(f'{rel}: {lines} lines, over {MAX_MODULE_LINES}: split it by job')
    tree = ast.parse(text, rel)
    dotted = _dotted(rel)
    own = _package(dotted)
    deps = set()
    for target, lineno in _imports(tree, dotted, rel.endswith('__init__.py')):
      other = _package(target)
      deps.add(target)
      if other == own or other not in LAYERS or own not in LAYERS:
        continue
      if LAYERS[other] >= LAYERS[own]:
        out.append(f'{rel}:{lineno}: imports {target}, which is not below {own} '
                   f'(rank {LAYERS[own]} imports rank {LAYERS[other]}): move the code down or '
                   'the import up')
    graph[dotted] = deps
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == 'absl' and any(
          a.name == 'flags' for a in node.names):
        out.append(f'{rel}:{node.lineno}: imports absl.flags: only launchers parse flags')
      if isinstance(node, ast.Import) and any(a.name == 'absl.flags' for a in node.names):
        out.append(f'{rel}:{node.lineno}: imports absl.flags: only launchers parse flags')
    if _below_trainer(rel) and os.path.basename(rel) == EDGE_MODULE:
      for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _config_params(node):
          body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr) and
                                   isinstance(node.body[0].value, ast.Constant)) else node.body
          size = (node.end_lineno - body[0].lineno + 1) if body else 0
          if not (node.name == 'from_config' or node.name.endswith('_from_config')):
            out.append(f'{rel}:{node.lineno}: {node.name}() takes a config in {EDGE_MODULE}: '
                       'name it from_config or *_from_config, or take typed options')
          elif size > ADAPTER_LINES:
            out.append(f'{rel}:{node.lineno}: {node.name}() is {size} lines: an adapter in '
                       f'{EDGE_MODULE} builds typed options and calls the typed function '
                       f'(at most {ADAPTER_LINES} lines after the docstring)')
    if _below_trainer(rel) and os.path.basename(rel) != EDGE_MODULE:
      for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
          hits = _config_params(node)
          if hits and _is_options_constructor(node):
            continue  # SamplerOptions.from_config: a typed option's own reader, at the edge
          if hits:
            out.append(f'{rel}:{node.lineno}: {node.name}() takes {", ".join(hits)}: below the '
                       'trainer, take typed options or explicit arguments (the config is read '
                       f'in the package\'s {EDGE_MODULE})')
        if isinstance(node, (ast.Import, ast.ImportFrom)):
          names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
              node.module or '']
          if any(n.split('.')[0] == 'ml_collections' for n in names):
            out.append(f'{rel}:{node.lineno}: imports ml_collections: below the trainer only '
                       f'{EDGE_MODULE} reads a ConfigDict')
  out += _cycles(graph)
  exp = os.path.join(root, 'experiments')
  for name in sorted(os.listdir(exp)) if os.path.isdir(exp) else []:
    if name.endswith('.py') and name != '__init__.py':
      n = open(os.path.join(exp, name), encoding='utf-8').read().count('\n')
      if n > MAX_LAUNCHER_LINES:
        out.append(f'experiments/{name}: {n} lines, over {MAX_LAUNCHER_LINES}: a launcher '
                   'parses flags and calls one library function')
  return out


def _cycles(graph):
  """One line per import cycle between wavegrad_jax modules (a package's __init__ included)."""
  nodes = set(graph)
  edges = {m: {d if d in nodes else d.rsplit('.', 1)[0] for d in deps} & nodes - {m}
           for m, deps in graph.items()}
  # A package's __init__ that re-exports its own modules is not a cycle with them.
  for m in edges:
    edges[m] = {d for d in edges[m] if not d.startswith(m + '.')}
  out, state = [], {}

  def visit(m, stack):
    state[m] = 1
    stack.append(m)
    for d in sorted(edges[m]):
      if state.get(d) == 1:
        cyc = stack[stack.index(d):] + [d]
        out.append('import cycle: ' + ' -> '.join(cyc))
      elif d not in state:
        visit(d, stack)
    stack.pop()
    state[m] = 2

  for m in sorted(nodes):
    if m not in state:
      visit(m, [])
  return out


def main():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  found = problems(root)
  for line in found:
    print(line)
  return 1 if found else 0


if __name__ == '__main__':
  sys.exit(main())
