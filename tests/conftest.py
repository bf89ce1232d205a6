"""Shared test fixtures."""
import os

# Tests run on CPU; keep XLA from grabbing every core's worth of threads per process.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

# In-process compilations share the launchers' persistent compilation cache (their subprocesses
# use it by default: experiments/configs/common.compile_config), so a program that several tests
# build, with the same shapes, compiles once per machine rather than once per test.
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update('jax_compilation_cache_dir',
                  os.path.abspath(os.path.expanduser('~/.cache/wavegrad_jax/jax_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
