"""Studies: the logic of the parity, benchmark, profiling, fine-tuning and aliasing studies.

Owns: `parity.py` (the criteria and reports of the comparison with the reference PyTorch
WaveGrad), `benchmark.py` (timing the sampler and train step, JSON records with the machine's
load), `profiling.py` (XLA profile of the train step, FLOP rates), `finetune.py` (the TTS
fine-tuning study), `aliasing.py` (the aliasing study of trained runs), `parity_training.py`
(the parity study's crops, shared noise draws and our jitted trainer), `parity_study.py` (its
sections, report and plot), `reference_benchmark.py` (our Base against the reference PyTorch
WaveGrad, timed in alternating worker processes), `accelerator.py` (the accelerator check's
sections within a time budget), `learning_curve.py` (the learning-curve study: every checkpoint
of some runs scored, resumable JSON and plots). The launchers in
experiments/ parse flags and call one function here. May import every package of wavegrad_jax;
nothing imports it.
"""
