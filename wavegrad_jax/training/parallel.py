"""Devices and processes: distributed start-up, the one way to build a mesh, shardings, host copies.

Training, the schedule search and evaluation all build their meshes with `make_mesh` from a
`MeshSpec`: `MeshSpec.from_config(config.mesh)`, or `MeshSpec.one_axis` for a one-axis mesh such
as the search's candidates.

Multi-process runs (several hosts, or one process per GPU): `maybe_initialize_distributed`
(distributed='auto') calls `jax.distributed.initialize()` when the environment shows more than one
process (JAX_COORDINATOR_ADDRESS or JAX_NUM_PROCESSES > 1, SLURM_NTASKS > 1, OMPI_COMM_WORLD_SIZE > 1,
several TPU_WORKER_HOSTNAMES, MEGASCALE_COORDINATOR_ADDRESS); jax then detects the cluster from the
same variables. Each process feeds its `1 / process_count` share of every global batch
(`to_global_batch`); `host_copy` gathers sharded arrays back to numpy on every process.
"""
import dataclasses
import math
import os
import signal
import threading
from typing import Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

P = jax.sharding.PartitionSpec
NamedSharding = jax.sharding.NamedSharding

_MULTIPROCESS_ENV = ('JAX_COORDINATOR_ADDRESS', 'MEGASCALE_COORDINATOR_ADDRESS')


# ----------------------------------------------------------------------------------- distributed


def _env_int(name):
  try:
    return int(os.environ.get(name, '0'))
  except ValueError:
    return 0


def multiprocess_environment():
  """Whether the environment describes a run of more than one JAX process (see module doc)."""
  if any(os.environ.get(name) for name in _MULTIPROCESS_ENV):
    return True
  if _env_int('JAX_NUM_PROCESSES') > 1 or _env_int('OMPI_COMM_WORLD_SIZE') > 1:
    return True
  if os.environ.get('SLURM_JOB_ID') and _env_int('SLURM_NTASKS') > 1:
    return True
  return len([h for h in os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]) > 1


def explicit_distributed_arguments(environ=None):
  """The process layout JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID spell out.

  `jax.distributed.initialize()` reads only the coordinator address from the environment; the
  process count and id must be passed (or come from a detected cluster: SLURM, Open MPI, TPU).

  Args:
    environ: the environment (default os.environ).
  Returns:
    {'coordinator_address', 'num_processes', 'process_id'} holding those that are set (none set:
    empty, and JAX's cluster detection fills them all in).
  Raises:
    ValueError: a count or id that is not an integer, an id outside [0, count), or only one of
      JAX_NUM_PROCESSES and JAX_PROCESS_ID.
  """
  environ = os.environ if environ is None else environ
  out = {}
  if environ.get('JAX_COORDINATOR_ADDRESS'):
    out['coordinator_address'] = environ['JAX_COORDINATOR_ADDRESS']
  for name, key in (('JAX_NUM_PROCESSES', 'num_processes'), ('JAX_PROCESS_ID', 'process_id')):
    if environ.get(name, '') != '':
      try:
        out[key] = int(environ[name])
      except ValueError:
        raise ValueError(f'{name}={environ[name]!r} must be an integer') from None
  if ('num_processes' in out) != ('process_id' in out):
    missing = 'JAX_PROCESS_ID' if 'num_processes' in out else 'JAX_NUM_PROCESSES'
    raise ValueError(f'JAX_NUM_PROCESSES and JAX_PROCESS_ID go together: {missing} is not set '
                     '(every process gets the same JAX_NUM_PROCESSES and its own JAX_PROCESS_ID '
                     'in [0, JAX_NUM_PROCESSES))')
  if 'num_processes' in out:
    if out['num_processes'] < 1 or not 0 <= out['process_id'] < out['num_processes']:
      raise ValueError(f'JAX_PROCESS_ID={out["process_id"]} must be in [0, JAX_NUM_PROCESSES='
                       f'{out["num_processes"]})')
    if 'coordinator_address' not in out:
      raise ValueError('JAX_NUM_PROCESSES and JAX_PROCESS_ID are set but JAX_COORDINATOR_ADDRESS '
                       'is not: set it to HOST:PORT of process 0 on every process')
  return out


def maybe_initialize_distributed(distributed_options):
  """Calls `jax.distributed.initialize` as `distributed_options` says; before any other JAX call.

  The coordinator address, process count and id come from JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID when set (`explicit_distributed_arguments`), otherwise from
  JAX's detection of SLURM, Open MPI or TPU environments. A process whose peer dies stops, instead
  of waiting for it, once the coordination service misses `heartbeat_timeout_seconds` of its
  heartbeats.

  Args:
    distributed_options: `options.DistributedOptions` (from the `mesh` section): distributed
      ('auto': initialise when `multiprocess_environment()`, 'always' or 'never') and the
      coordination timeouts in seconds (initialization_timeout_seconds,
      heartbeat_timeout_seconds, shutdown_timeout_seconds).
  Returns:
    True when this call (or an earlier one) initialised the distributed runtime.
  Raises:
    ValueError: a bad `distributed` mode or an inconsistent environment (naming the variable).
  """
  mode = distributed_options.distributed
  if mode not in ('auto', 'always', 'never'):
    raise ValueError(f"mesh.distributed must be 'auto', 'always' or 'never', got {mode!r}")
  if jax.distributed.is_initialized():
    return True
  if mode == 'always' or (mode == 'auto' and multiprocess_environment()):
    arguments = explicit_distributed_arguments()
    if jax.config.jax_cpu_collectives_implementation is None:
      # CPU devices of several processes need a collectives library (JAX's default since 0.4.36).
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    try:
      jax.distributed.initialize(
          **arguments,
          initialization_timeout=int(distributed_options.initialization_timeout_seconds),
          heartbeat_timeout_seconds=int(distributed_options.heartbeat_timeout_seconds),
          shutdown_timeout_seconds=int(distributed_options.shutdown_timeout_seconds))
    except ValueError as e:
      raise ValueError(
          f'jax.distributed.initialize: {e} Set JAX_COORDINATOR_ADDRESS=HOST:PORT (process 0), '
          'JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process, or run under SLURM, Open MPI '
          "or on a TPU pod; --config.mesh.distributed=never runs a single process.") from e
    logging.info('jax.distributed initialised: process %d of %d', jax.process_index(),
                 jax.process_count())
    return True
  return False


def process_zero_first(fn, barrier_name):
  """fn() on process 0, then (after a barrier) on the others; returns this process's result.

  For work that writes shared files once (a dataset build) which the other processes then read.
  """
  if jax.process_count() == 1:
    return fn()
  result = fn() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(barrier_name)
  if jax.process_index() != 0:
    result = fn()
  return result


class Preemption:
  """A SIGTERM flag (one process) or the coordination service's agreed notice (several).

  With several processes, `multihost_utils.reached_preemption_sync_point` makes every process
  agree on the step to stop at.
  """

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._multi = jax.process_count() > 1
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda *_: self._flag.set())

  def requested(self, step):
    """Whether to stop after `step` (every process gets the same answer)."""
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._flag.is_set()

  def restore(self):
    """Puts back the SIGTERM handler that was there before."""
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


# ------------------------------------------------------------------------------------------- mesh


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """A mesh description with the fields of a `config.mesh` section (see configs/common.py).

  The typed mesh options every function here takes; `from_config` reads them from the section.

  Attributes:
    axis_names: one name per mesh axis.
    shape: one size per axis; at most one -1 (all remaining devices).
    batch_axes: the axes a batch (or any leading axis) is split over.
    fsdp_axis: the axis parameters are sharded over, or '' (replicated).
  """
  axis_names: Tuple[str, ...]
  shape: Tuple[int, ...]
  batch_axes: Tuple[str, ...] = ()
  fsdp_axis: str = ''

  @classmethod
  def from_config(cls, mesh_config):
    """The mesh fields of a `mesh` config section (its multi-process fields are not read)."""
    return cls(axis_names=tuple(mesh_config.axis_names), shape=tuple(mesh_config.shape),
               batch_axes=tuple(mesh_config.batch_axes), fsdp_axis=mesh_config.fsdp_axis)

  @classmethod
  def one_axis(cls, name):
    """A 1-D mesh named `name` over every device, split along it."""
    return cls(axis_names=(name,), shape=(-1,), batch_axes=(name,))


def mesh_shape(mesh_spec, num_devices):
  """Resolves the one -1 of `mesh_spec.shape` so the mesh covers `num_devices` devices.

  Args:
    mesh_spec: a `MeshSpec` (`MeshSpec.from_config(config.mesh)`).
    num_devices: devices in the run (all processes).
  Returns:
    tuple of ints, one per axis name.
  """
  names, shape = tuple(mesh_spec.axis_names), [int(s) for s in mesh_spec.shape]
  if len(names) != len(shape) or len(set(names)) != len(names):
    raise ValueError(f'mesh.axis_names {names} and mesh.shape {tuple(shape)} must have one '
                     'distinct name per axis size')
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f'mesh.shape {tuple(shape)}: sizes must be positive, with at most one -1')
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if num_devices % known:
      raise ValueError(f'mesh.shape {tuple(shape)}: {num_devices} devices do not divide by the '
                       f'fixed axes\' product {known}')
    shape[shape.index(-1)] = num_devices // known
  if math.prod(shape) != num_devices:
    raise ValueError(f'mesh.shape {tuple(shape)} has {math.prod(shape)} devices but the run has '
                     f'{num_devices}: use -1 for one axis to take the rest')
  return tuple(shape)


def make_mesh(mesh_spec, devices=None):
  """The device mesh of a mesh section over `devices` (default: every device of every process).

  Args:
    mesh_spec: a `MeshSpec` (`MeshSpec.from_config(config.mesh)`).
    devices: the devices to lay out (e.g. `jax.devices()[:1]`), or None for all.
  Returns:
    a `jax.sharding.Mesh`.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_spec, len(devices))
  names = tuple(mesh_spec.axis_names)
  for axis in tuple(mesh_spec.batch_axes) + ((mesh_spec.fsdp_axis,) if
                                               mesh_spec.fsdp_axis else ()):
    if axis not in names:
      raise ValueError(f'mesh axis {axis!r} (from mesh.batch_axes / mesh.fsdp_axis) is not one of '
                       f'mesh.axis_names {names}')
  return jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,) * len(names),
                       devices=devices)


# ------------------------------------------------------------------------------------- shardings


def batch_partitions(mesh, mesh_spec):
  """Number of shards the global batch is split into (product of the batch axes' sizes)."""
  return math.prod(mesh.shape[a] for a in mesh_spec.batch_axes)


def check_batch_size(batch_size, mesh, mesh_spec, what='train.batch_size'):
  """Raises ValueError unless `batch_size` splits evenly over the batch axes and the processes."""
  parts = batch_partitions(mesh, mesh_spec)
  axes = tuple(mesh_spec.batch_axes)
  if batch_size < 1 or batch_size % parts:
    lower = max(parts, batch_size // parts * parts)
    raise ValueError(
        f'{what}={batch_size} does not split evenly over the {parts} batch shards of mesh axes '
        f'{axes} (mesh {dict(mesh.shape)}, {jax.device_count()} devices): use a multiple of '
        f'{parts} (e.g. {lower} or {lower + parts}), or change config.mesh.')
  if batch_size % jax.process_count():
    raise ValueError(f'{what}={batch_size} does not split evenly over {jax.process_count()} '
                     'processes, each of which feeds its own share of the batch')


def batch_sharding(mesh, mesh_spec):
  """NamedSharding of [B, ...] batch arrays: B split over `mesh_spec.batch_axes`."""
  return NamedSharding(mesh, P(tuple(mesh_spec.batch_axes)))


def replicated(mesh):
  """NamedSharding of an array every device of `mesh` holds whole."""
  return NamedSharding(mesh, P())


def param_partition_spec(shape, mesh, fsdp_axis):
  """Replicated, or (FSDP) the largest dimension divisible by the fsdp axis size split over it."""
  if not fsdp_axis or not shape:
    return P()
  size = mesh.shape[fsdp_axis]
  candidates = [d for d in range(len(shape)) if shape[d] % size == 0 and shape[d] >= size]
  if not candidates:
    return P()
  dim = max(candidates, key=lambda d: shape[d])
  return P(*([None] * dim + [fsdp_axis]))


def state_shardings(abstract_state, mesh, mesh_spec):
  """Per-leaf NamedShardings of a parameter pytree (params, EMA and optimiser moments alike)."""
  return jax.tree.map(
      lambda x: NamedSharding(mesh, param_partition_spec(x.shape, mesh, mesh_spec.fsdp_axis)),
      abstract_state)


# --------------------------------------------------------------------------- global arrays, hosts


def to_global_batch(local_batch, sharding, global_batch_size):
  """Assembles each process's [B / process_count, ...] numpy arrays into global jax.Arrays.

  Args:
    local_batch: dict of numpy arrays, leading dimension this process's share of the batch.
    sharding: the batch NamedSharding.
    global_batch_size: B summed over processes.
  Returns:
    dict of [B, ...] jax.Arrays sharded by `sharding`.
  """
  return {k: jax.make_array_from_process_local_data(
      sharding, np.asarray(v), (global_batch_size,) + tuple(np.shape(v)[1:]))
          for k, v in local_batch.items()}


def replicated_array(value, sharding):
  """A global jax.Array of `value` (numpy, identical on every process) laid out by `sharding`."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def host_copy(tree):
  """A fully materialised copy of a (possibly sharded, multi-process) pytree as numpy arrays.

  Every process must call it: sharded leaves are gathered across processes.
  """
  def fetch(x):
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree.map(fetch, tree)
