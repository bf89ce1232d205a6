"""JAX's persistent compilation cache for the launchers: compile a program once per machine.

Every launcher start used to recompile its jitted programs (the train step alone takes 9 to 25 s on
CPU). With `config.compile.cache_dir` set, XLA executables are stored on disk keyed by the program,
the devices and the JAX version, and a later start with the same shapes reads them back instead of
compiling. Only programs whose compilation took at least `compile.min_compile_seconds` are stored.
"""
import os

from absl import logging
import jax

DEFAULT_CACHE_DIR = '~/.cache/wavegrad_jax/jax_cache'


def enable_persistent_cache(cache_options):
  """Points JAX's persistent compilation cache at `cache_options.cache_dir` ('' leaves it off).

  Call before the first compilation that should be cached (earlier ones are simply not stored). A
  config without a `compile` section (a run older than the cache) gets `DEFAULT_CACHE_DIR`
  (`options.CompileCacheOptions.from_config`).

  Args:
    cache_options: `options.CompileCacheOptions`: cache_dir ('~' expanded) and
      min_compile_seconds (seconds).
  Returns:
    the absolute cache directory, or None when the cache is off.
  """
  directory = str(cache_options.cache_dir)
  if not directory:
    return None
  min_seconds = float(cache_options.min_compile_seconds)
  path = os.path.abspath(os.path.expanduser(directory))
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', min_seconds)
  logging.info('persistent compilation cache: %s (programs compiling in >= %g s)', path,
               min_seconds)
  return path
