"""Studies: the logic of the parity, benchmark, profiling, fine-tuning and aliasing studies.

Owns: `parity.py` (the criteria and reports of the comparison with the reference PyTorch
WaveGrad), `benchmark.py` (timing the sampler and train step, JSON records with the machine's
load), `profiling.py` (XLA profile of the train step, FLOP rates), `finetune.py` (the TTS
fine-tuning study), `aliasing.py` (the aliasing study of trained runs). The launchers in
experiments/ parse flags and call one function here. May import every package of wavegrad_jax;
nothing imports it.
"""
