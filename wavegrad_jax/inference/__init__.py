"""Inference: vocoding mels with a trained run, chunked, from files or folders, and export.

Owns: `synthesize.py` (the synthesizer's entry point: a launcher's request checked, restored and
vocoded; re-exports the public names of the modules below), `chunking.py` (chunked vocoding of
long inputs with overlap, batched across files; GLA target magnitudes), `mel_input.py` (checking
and converting input mels, reading the mel of a .npy or audio file), `inputs.py` (collecting the
inputs of a file or folder, checking the output folder), `folder.py` (synthesizing a folder with a
plan, resume and atomic writes), `restore.py` (what synthesis needs from a workdir: the step to
restore, the run settings recorded with the wavs), `declared.py` (the audio section the --mel_*
flags declare), `run_config.py` (the config an inference command runs with: the checkpoint's
config plus the user's overrides), `export.py` (a jax.export artifact of the sampler),
`export_runtime.py` (the few lines that run such an artifact without this package). May import:
training (checkpoints), processes, sampling, models, data, audio and the shared leaves; nothing of
evaluation or studies. This is the synthesizer edge: it turns the config into typed options.
"""
