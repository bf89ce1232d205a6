"""Generative processes: how a training example is noised, what the network predicts, and how a
sampler walks back from the source distribution to speech.

Owns: the `Process` interface and the typed `SamplingSettings` its sampler reads (`base.py`),
the paper's noise-level process (`wavegrad.py`), flow matching (`flow.py`), the spectral losses on
a process's one-step estimate (`spectral.py`), the registry `PROCESSES` that `config.process.name`
chooses from (`registry.py`), and the edge that reads the config (`options.py`: the only module
here that reads a ConfigDict; its `*_from_config` adapters are re-exported here). May import: jax,
numpy and the maths modules of the library (`diffusion`, `schedules`, `priors`, `sampling`,
`audio`); never a Flax module, training, inference or evaluation code, and never absl flags.

A new process is one module defining a `base.Process` subclass plus one entry in
`registry.PROCESSES`. Every network is called through the same function,
net_fn(params, x [B, T], mel [B, F, M], scalar [B]) -> [B, T], so any registered model serves any process.
"""
from wavegrad_jax.processes import base
from wavegrad_jax.processes import flow
from wavegrad_jax.processes import registry
from wavegrad_jax.processes import spectral
from wavegrad_jax.processes import wavegrad
from wavegrad_jax.processes.base import SamplingSettings
from wavegrad_jax.processes.options import (check_sampling_from_config, from_config,
                                            make_sampler_from_config,
                                            network_evaluations_from_config,
                                            parse_grid_from_config, process_class_from_config,
                                            process_name_from_config, recorded_fields_from_config,
                                            sampler_from_config)
from wavegrad_jax.processes.registry import (DEFAULT_PROCESS, PROCESSES, check_name, process_class,
                                             recorded_fields)

Process = base.Process  # the interface a new process implements
