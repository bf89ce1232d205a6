"""The paper's noise-level maths: forward noising, losses, schedules and PriorGrad's prior.

Owns: `noise.py` (q(y_n | y_0) with a continuous noise level drawn between the discrete levels,
the noise-prediction losses; Chen et al. 2020, eqs. 1 to 8 and algorithm 1), `schedules.py`
(beta schedules by name or list, noise levels, the paper's named 6/25/50/1000-step schedules),
`priors.py` (PriorGrad's mel-shaped source, Lee et al. 2022, and its `PriorOptions`),
`options.py` (the edge: `prior_from_config`, `needs_energy_range_from_config`). Pure
jax/numpy functions; no Flax module. May import: jax, numpy, `wavegrad_jax.audio` and the shared leaves; nothing of
models, sampling, processes, data, training, inference or evaluation.

This sits below `sampling` and `processes`, not inside `processes` (where the layout issue first
put it): the samplers need schedules and the prior, and the processes need the samplers, so a
separate package keeps the graph acyclic.
"""
