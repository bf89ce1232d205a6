"""Where the train step's time and memory go: XLA's cost and memory analyses, and timed pieces.

The step under study is `train.compile_train_step`'s, built exactly as `train_and_evaluate` builds
it. Its breakdown times the step's three parts, each jitted on its own with the same shapes: the
forward and backward pass (`jax.value_and_grad` of the denoising loss, noise drawn inside), the
optimiser update (clipping, Adam, apply) and the EMA update, plus the forward pass alone and the
host-to-device copy of a batch. `piece_functions` composes to the step exactly (a test checks it),
so the pieces' times are the step's parts up to what XLA fuses across them. A JAX profiler trace
of one step adds where XLA's threads spend their time, by kind of HLO op and by pass (forward,
backward, update), read with `jax.profiler.ProfileData`.
"""
import collections
import functools
import glob
import re
import tempfile
import time

import jax
import numpy as np
import optax

from jax.profiler import ProfileData

from wavegrad_jax.studies import benchmark as benchmark_lib
from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.diffusion import priors
from wavegrad_jax import sampling
from wavegrad_jax.training import trainer as train


def cost_summary(compiled):
  """{'flops', 'bytes_accessed', 'transcendentals'} of a compiled program (XLA's estimates)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
    cost = cost[0] if cost else {}
  cost = cost or {}
  return {k.replace(' ', '_'): float(cost[k]) for k in ('flops', 'bytes accessed',
                                                        'transcendentals') if k in cost}


def memory_summary(compiled):
  """Argument / output / alias / temp / code bytes of a compiled program (`memory_analysis`)."""
  m = compiled.memory_analysis()
  if m is None:
    return {}
  names = ('argument_size_in_bytes', 'output_size_in_bytes', 'alias_size_in_bytes',
           'temp_size_in_bytes', 'generated_code_size_in_bytes')
  return {n: int(getattr(m, n)) for n in names if hasattr(m, n)}


def aliased_parameters(compiled):
  """Number of output buffers the compiled module aliases to (donated) inputs."""
  header = compiled.as_text().split('\n', 1)[0]  # 'HloModule name, input_output_alias={...}, ...'
  return len(re.findall(r'(?:may|must)-alias', header))


_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][a-z\-]*)\(')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%?([\w.\-]+) ', re.M)


def _fusion_kind(opcodes):
  """What a fused computation mostly does, from the opcodes inside it."""
  for heavy in ('convolution', 'dot', 'reduce-window', 'reduce', 'concatenate', 'transpose'):
    if heavy in opcodes:
      return f'fusion({heavy})'
  return 'fusion(elementwise)'


def hlo_instructions(compiled):
  """{instruction name: (kind, JAX op_name or '')} of a compiled module's HLO text.

  kind is the opcode, or for a fusion 'fusion(<what it computes>)', e.g. 'fusion(convolution)';
  a fusion without an op_name of its own takes the first one inside it.
  """
  computations = {}
  for block in re.split(r'\n(?=\S)', compiled.as_text()):
    match = _COMPUTATION.match(block)
    if match:
      computations[match.group(1)] = block
  table = {}
  for line in compiled.as_text().split('\n'):
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    kind = match.group(2)
    op_name = re.search(r'op_name="([^"]*)"', line)
    op_name = op_name.group(1) if op_name else ''
    called = re.search(r'calls=%?([\w.\-]+)', line)
    if kind == 'fusion' and called and called.group(1) in computations:
      body = computations[called.group(1)]
      kind = _fusion_kind({m.group(2) for m in map(_INSTRUCTION.match, body.split('\n')) if m})
      inner = re.search(r'op_name="([^"]*)"', body)
      op_name = op_name or (inner.group(1) if inner else '')
    table[match.group(1)] = (kind, op_name)
  return table


# Control flow whose events enclose those of the ops they run: counting both would count twice.
_CONTAINERS = ('while', 'call', 'conditional')


def _role(op_name):
  """The pass an HLO op belongs to, from its JAX op_name: forward, backward, update, unattributed.

  Ops XLA creates itself (layout copies, some fused convolutions) carry no op_name.
  """
  if 'transpose(jvp(' in op_name:
    return 'backward'
  if 'jvp(' in op_name:
    return 'forward'
  return 'update' if op_name else 'unattributed'


def op_breakdown(compiled, run, steps, top=12):
  """XLA-thread time per kind of HLO op and per pass, from a JAX profiler trace of `steps` runs.

  Times are summed over XLA's CPU threads (thread-seconds) and divided by `steps`; shares are of
  the summed time of all traced HLO ops. Caveat: on a busy host, and for XLA:CPU's convolutions
  (run on its Eigen pool, apparently not attributed to the op's event), the traced time is well
  below the wall time, so convolutions are under-counted: compare thread_s_per_step with
  wall_s_per_step; the shares of the other kinds (layout transposes, elementwise fusions) are
  comparable among themselves.

  Args:
    compiled: the compiled program `run` calls (for the kind and op_name of each instruction).
    run: callable running it once, blocking.
    steps: traced runs.
    top: how many of the costliest instructions to list.
  Returns:
    {'wall_s_per_step', 'thread_s_per_step', 'untraced_thread_s_per_step' (other events on XLA's threads),
     'by_kind': {opcode or fusion(what): share}, 'by_pass': {forward/backward/update:
     share}, 'top': [{name, kind, op_name, share}]}.
  """
  table = hlo_instructions(compiled)
  with tempfile.TemporaryDirectory() as folder:
    jax.profiler.start_trace(folder)
    start = time.perf_counter()
    for _ in range(steps):
      run()
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    paths = glob.glob(f'{folder}/**/*.xplane.pb', recursive=True)
    data = ProfileData.from_file(paths[-1])
  per_name, other = collections.Counter(), 0.0
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_XLA'):
        continue
      for event in line.events:
        if event.name in table and table[event.name][0] in _CONTAINERS:
          continue  # their bodies' ops are traced themselves
        if event.name in table:
          per_name[event.name] += event.duration_ns * 1e-9
        elif not event.name.startswith(('end:', 'Threadpool', 'ThunkExecutor')):
          other += event.duration_ns * 1e-9
  total = sum(per_name.values()) or 1.0
  by_kind, by_pass = collections.Counter(), collections.Counter()
  for name, seconds in per_name.items():
    kind, op_name = table[name]
    by_kind[kind] += seconds / total
    by_pass[_role(op_name)] += seconds / total
  return {
      'wall_s_per_step': wall / steps,
      'thread_s_per_step': total / steps,
      'untraced_thread_s_per_step': other / steps,
      'by_kind': dict(by_kind.most_common()),
      'by_pass': dict(by_pass.most_common()),
      'top': [{'name': n, 'kind': table[n][0], 'op_name': table[n][1], 'share': t / total}
              for n, t in per_name.most_common(top)],
  }


def tree_bytes(tree):
  """Total bytes of the arrays of a pytree."""
  return int(sum(np.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def piece_functions(config, model, tx):
  """The train step's parts as pure functions; run in order they compute `train.train_step`.

  Returns:
    dict of
      'forward': (params, batch, step) -> scalar loss;
      'forward_backward': (params, batch, step) -> (loss, grads);
      'optimizer': (grads, opt_state, params) -> (params, opt_state);
      'ema': (ema_params, params, step) -> ema_params.
  """
  levels = train.train_noise_levels(config)
  prior = priors.make_prior(priors.PriorOptions.from_config(config))
  eps_fn = sampling.model_eps_fn(model)
  seed, loss_name = int(config.seed), config.diffusion.loss

  def loss(params, batch, step):
    audio, mel = batch['audio'], batch['mel']
    noise_std = None if prior is None else prior.noise_std(mel, audio.shape[-1] // mel.shape[-2])
    return diffusion.denoising_loss(eps_fn, params, train.step_rng(seed, step), audio, mel,
                                    levels, loss_name, noise_std)[0]

  def optimizer(grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def ema(ema_params, params, step):
    decay = train.ema_decay(config.train, step)
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)

  return {'forward': loss, 'forward_backward': jax.value_and_grad(loss), 'optimizer': optimizer,
          'ema': ema}


def _time(fn, repeats):
  """Median and min wall seconds of fn() (which blocks) over `repeats` runs."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), float(np.min(times))


def profile_batch(config, batch_size, warmup_steps, timed_steps):
  """Cost, memory, donation and a timed breakdown of the train step at `batch_size`.

  Args:
    config: full config (its train.batch_size is replaced).
    batch_size: global batch B.
    warmup_steps: untimed runs of each program after compilation.
    timed_steps: timed runs (each waited for) of each program; medians are reported.
  Returns:
    JSON-ready dict: 'step' (compile_s, cost, memory, donation, time_median_s), 'ops' (the
    step's traced time by kind of HLO op and by pass, `op_breakdown`), 'pieces' (per
    piece: cost, time_median_s, fraction_of_step), 'host_to_device' (batch bytes, seconds,
    fraction_of_step) and per-example figures.
  """
  config, model, tx, state, step_fn, compile_s, sharding = benchmark_lib.compiled_train_step(
      config, batch_size)
  host_batch = benchmark_lib.synthetic_batch(config, batch_size, np.random.default_rng(0))
  put = lambda: parallel.to_global_batch(host_batch, sharding, batch_size)
  batch = put()

  # Donation: XLA aliases state inputs to outputs, and the caller's old buffers are consumed.
  old_leaves = jax.tree.leaves(state)
  for _ in range(max(1, warmup_steps)):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready((state, metrics))
  donation = {
      'state_bytes': tree_bytes(state),
      'aliased_buffers': aliased_parameters(step_fn),
      'state_buffers': len(jax.tree.leaves(state)),
      'input_buffers_deleted_after_call': int(sum(x.is_deleted() for x in old_leaves)),
  }
  def run_step():
    nonlocal state
    state, m = step_fn(state, batch)
    jax.block_until_ready((state, m))
  step_median, step_min = _time(run_step, timed_steps)
  ops = op_breakdown(step_fn, run_step, steps=1)

  pieces = piece_functions(config, model, tx)
  step = state.step
  jitted = {
      'forward': jax.jit(pieces['forward']),
      'forward_backward': jax.jit(pieces['forward_backward']),
      'optimizer': jax.jit(pieces['optimizer'], donate_argnums=(1, 2)),
      'ema': jax.jit(pieces['ema'], donate_argnums=(0,)),
  }
  # Copies: the optimiser and EMA pieces consume (donate) their state as the step does.
  params = jax.tree.map(lambda x: x.copy(), state.params)
  opt_state = jax.tree.map(lambda x: x.copy(), state.opt_state)
  ema_params = jax.tree.map(lambda x: x.copy(), state.ema_params)
  _, grads = jitted['forward_backward'](params, batch, step)
  compiled = {
      'forward': jitted['forward'].lower(params, batch, step).compile(),
      'forward_backward': jitted['forward_backward'].lower(params, batch, step).compile(),
      'optimizer': jitted['optimizer'].lower(grads, opt_state, params).compile(),
      'ema': jitted['ema'].lower(ema_params, state.params, step).compile(),
  }
  carry = {'params': params, 'opt_state': opt_state, 'ema': ema_params}

  def run_piece(name):
    if name in ('forward', 'forward_backward'):
      jax.block_until_ready(compiled[name](carry['params'], batch, step))
    elif name == 'optimizer':
      carry['params'], carry['opt_state'] = compiled[name](grads, carry['opt_state'],
                                                           carry['params'])
      jax.block_until_ready(carry['params'])
    else:
      carry['ema'] = compiled[name](carry['ema'], state.params, step)
      jax.block_until_ready(carry['ema'])

  piece_results = {}
  for name in compiled:
    for _ in range(warmup_steps):
      run_piece(name)
    median, low = _time(functools.partial(run_piece, name), timed_steps)
    piece_results[name] = {'time_median_s': median, 'time_min_s': low,
                           'fraction_of_step': median / step_median,
                           'cost': cost_summary(compiled[name]),
                           'memory': memory_summary(compiled[name]),
                           'aliased_buffers': aliased_parameters(compiled[name])}
  parts = ('forward_backward', 'optimizer', 'ema')
  pieces_sum = sum(piece_results[n]['time_median_s'] for n in parts)

  h2d_median, _ = _time(lambda: jax.block_until_ready(put()), timed_steps)
  cost = cost_summary(step_fn)
  memory = memory_summary(step_fn)
  return {
      'batch_size': batch_size,
      'samples_per_example': int(host_batch['audio'].shape[1]),
      'params': model_lib.count_params(state.params),
      'step': {
          'compile_s': compile_s,
          'time_median_s': step_median,
          'time_min_s': step_min,
          'examples_per_sec': batch_size / step_median,
          'cost': cost,
          'memory': memory,
          'donation': donation,
          'achieved_gflops_per_sec': cost.get('flops', 0.0) / step_median / 1e9,
      },
      'per_example': {
          'step_time_s': step_median / batch_size,
          'flops': cost.get('flops', 0.0) / batch_size,
          'bytes_accessed': cost.get('bytes_accessed', 0.0) / batch_size,
          'temp_bytes': memory.get('temp_size_in_bytes', 0) / batch_size,
      },
      'ops': ops,
      'pieces': piece_results,
      'pieces_sum_over_step': pieces_sum / step_median,
      'backward_over_forward': (piece_results['forward_backward']['time_median_s']
                                / piece_results['forward']['time_median_s'] - 1.0),
      'host_to_device': {'batch_bytes': tree_bytes(host_batch), 'time_median_s': h2d_median,
                         'fraction_of_step': h2d_median / step_median},
      'last_loss': float(metrics['loss']),
      **benchmark_lib.peak_memory(),
  }
