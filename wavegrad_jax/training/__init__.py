"""Training: the train state, optimiser, train step, trainer loop, checkpoints and the mesh.

Owns: `trainer.py` (`train_and_evaluate(config, workdir)`, the train state, the optimiser, the
pure train step and its ahead-of-time compilation), `checkpoints.py` (orbax CheckpointManager
layout, config.json, resume and compatibility checks, restoring for inference),
`parallel.py` (the device mesh, NamedSharding of batch and state, multi-process start-up),
`reporting.py` (TensorBoard scalars, audio and images, the progress bar), `compilation.py`
(the persistent compile cache). May import: every package below it (audio, models, diffusion,
sampling, processes, data) and the shared leaves; nothing of inference, evaluation or studies.
This is the trainer edge: it turns the config into the typed options the lower packages take.
"""
