"""Inference: vocoding mels with a trained run, chunked, from files or folders, and export.

Owns: `synthesize.py` (restoring what inference needs from a workdir, chunked vocoding of long
inputs with overlap, checking and converting input mels, synthesizing a folder with a plan,
resume and atomic writes), `export.py` (a jax.export artifact of the sampler),
`export_runtime.py` (the few lines that run such an artifact without this package). May import:
training (checkpoints), processes, sampling, models, data, audio and the shared leaves; nothing
of evaluation or studies. This is the synthesizer edge: it turns the config into typed options.
"""
