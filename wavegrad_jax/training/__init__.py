"""Training: the train state, optimiser, train step, trainer loop, checkpoints and the mesh.

Owns: `trainer.py` (`train_and_evaluate(config, workdir)`, the loop; re-exports the names below
as `train.<name>`), `state.py` (the train state and the optimiser), `step.py` (the pure train and
held-out steps and their ahead-of-time compilation), `startup.py` (the checks made before a run
writes anything, the dataset, a fine-tune's source), `evaluator.py` (held-out loss, vocoded
examples), `checkpoints.py` (the orbax managers of a run, failed writes; re-exports its
siblings), `run_files.py` (workdir layout, config.json, archiving), `compatibility.py` (whether a
checkpoint fits a run), `inference_loading.py` (restoring a run for inference),
`parallel.py` (the device mesh, NamedSharding of batch and state, multi-process start-up),
`reporting.py` (TensorBoard scalars, audio and images, the progress bar), `compilation.py`
(the persistent compile cache), `options.py` (the typed options of parallel, reporting and
compilation, and their `*_from_config` adapters). May import: every package below it (audio,
models, diffusion, sampling, processes, data) and the shared leaves; nothing of inference,
evaluation or studies.
This is the trainer edge: it turns the config into the typed options the lower packages take.
"""
