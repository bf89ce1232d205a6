"""The networks: Flax modules of every family and the registry that `config.model.name` chooses.

Owns: the learned parts, nothing else. `wavegrad.py` is the paper's conditional denoiser (Chen
et al. 2020, Base and Large), `frame.py` the frame-domain ConvNeXt denoiser (Vocos-style),
`discriminators.py` the adversarial fine-tune's waveform discriminators (HiFi-GAN's
multi-period, UnivNet's multi-resolution; `DISCRIMINATORS` names them),
`registry.py` the name -> network table (`MODELS`) with building, initialising and counting from
a typed `ModelSpec`, and `options.py` the edge that reads the config into one (the only module
here that reads a ConfigDict).
Every network has the one signature net(x [B, T], mel [B, F, n_mels], c [B]) -> [B, T], so every
process, sampler and launcher runs it unchanged. May import: jax, flax, numpy,
`wavegrad_jax.audio` (the STFT) and the shared leaves (`errors`, `jsonable`); nothing of
diffusion, sampling, processes, data, training, inference or evaluation.

The registry's and the options' names are re-exported here, so `from wavegrad_jax import models`
then `models.build_model(models.ModelSpec.from_config(config))` (or the adapter
`models.build_model_from_config(config)`) is the way in.
"""
from wavegrad_jax.models.options import (ModelSpec, build_model_from_config,
                                         init_params_from_config, macs_per_second_from_config,
                                         model_name_from_config, model_section_from_config,
                                         random_params_from_config, resolved_from_config,
                                         size_summary_from_config)
from wavegrad_jax.models.registry import (DEFAULT_MODEL, DISCRIMINATORS, MODELS, ModelVariant,
                                          build_discriminators, build_model, count_params, init_params, macs_per_second,
                                          random_params, recorded_section, size_summary)
from wavegrad_jax.models.wavegrad import (DILATION_ORDERS, DBlock, FiLM, UBlock, WaveGrad,
                                          dilation_order_of, noise_level_encoding,
                                          resolve_dilations, upsample_dilations_for,
                                          upsample_factor_suggestions, validate_topology)
