"""The trainer edge: the typed options of parallel.py, reporting.py and compilation.py.

Those modules sit below the trainer and take no config: each hyper-parameter is read here, once,
into a field of the same name as the config field it comes from (README "Layout"). The mesh's
own options are `parallel.MeshSpec` (`MeshSpec.from_config(config.mesh)`). The `*_from_config`
adapters are for callers that hold a config (launchers, studies, tests).
"""
import dataclasses

from wavegrad_jax.training import compilation
from wavegrad_jax.training import parallel
from wavegrad_jax.training import reporting

DEFAULT_CACHE_DIR = compilation.DEFAULT_CACHE_DIR


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
  """How a run starts jax.distributed (the `mesh` section's multi-process fields).

  Attributes:
    distributed: 'auto' (initialise when the environment shows several processes), 'always' or
      'never'.
    initialization_timeout_seconds: seconds to wait for every process to join.
    heartbeat_timeout_seconds: seconds of missed heartbeats after which a peer counts as dead.
    shutdown_timeout_seconds: seconds to wait for every process at shutdown.
  """
  distributed: str = 'auto'
  initialization_timeout_seconds: int = 300
  heartbeat_timeout_seconds: int = 100
  shutdown_timeout_seconds: int = 300

  @classmethod
  def from_config(cls, mesh_config):
    """From the `mesh` section (the timeouts default as above when a config lacks them)."""
    return cls(distributed=mesh_config.distributed,
               initialization_timeout_seconds=int(
                   mesh_config.get('initialization_timeout_seconds', 300)),
               heartbeat_timeout_seconds=int(mesh_config.get('heartbeat_timeout_seconds', 100)),
               shutdown_timeout_seconds=int(mesh_config.get('shutdown_timeout_seconds', 300)))


@dataclasses.dataclass(frozen=True)
class ReportingOptions:
  """Where a run's reports go and how they show (the `logging` section).

  Attributes:
    tensorboard_dir: TensorBoard folder, relative to the workdir.
    metrics_file: the JSONL metrics file, relative to the workdir.
    samples_dir: folder of vocoded held-out wavs, relative to the workdir.
    progress_bar: show a tqdm bar on process 0.
  """
  tensorboard_dir: str = 'tensorboard'
  metrics_file: str = 'metrics.jsonl'
  samples_dir: str = 'samples'
  progress_bar: bool = True

  @classmethod
  def from_config(cls, logging_config):
    """From the `logging` section."""
    return cls(tensorboard_dir=logging_config.tensorboard_dir,
               metrics_file=logging_config.metrics_file,
               samples_dir=logging_config.samples_dir,
               progress_bar=bool(logging_config.progress_bar))


@dataclasses.dataclass(frozen=True)
class CompileCacheOptions:
  """JAX's persistent compilation cache (the `compile` section).

  Attributes:
    cache_dir: the cache folder ('~' expanded); '' leaves the cache off.
    min_compile_seconds: seconds a program must take to compile to be stored.
  """
  cache_dir: str = DEFAULT_CACHE_DIR
  min_compile_seconds: float = 1.0

  @classmethod
  def from_config(cls, config):
    """From a full config; one without a `compile` section (older than the cache) gets the
    defaults above."""
    section = config.get('compile', None)
    if section is None:
      return cls()
    return cls(cache_dir=str(section.get('cache_dir', '')),
               min_compile_seconds=float(section.get('min_compile_seconds', 1.0)))


def make_mesh_from_config(mesh_config, devices=None):
  """`parallel.make_mesh` of a `mesh` config section (over `devices`, default all)."""
  return parallel.make_mesh(parallel.MeshSpec.from_config(mesh_config), devices)


def batch_sharding_from_config(mesh, mesh_config):
  """`parallel.batch_sharding` of `mesh` split over the `mesh` section's batch axes."""
  return parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(mesh_config))


def maybe_initialize_distributed_from_config(mesh_config):
  """`parallel.maybe_initialize_distributed` as the `mesh` section says."""
  return parallel.maybe_initialize_distributed(DistributedOptions.from_config(mesh_config))


def enable_persistent_cache_from_config(config):
  """`compilation.enable_persistent_cache` as the config's `compile` section says."""
  return compilation.enable_persistent_cache(CompileCacheOptions.from_config(config))


def reporter_from_config(workdir, config, start_step):
  """A `reporting.Reporter` of a run of `config` (its `logging` section, train.num_steps)."""
  return reporting.Reporter(workdir, ReportingOptions.from_config(config.logging), start_step,
                            config.train.num_steps)
