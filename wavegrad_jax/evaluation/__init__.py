"""Evaluation: metrics, perceptual measures, evaluating and comparing checkpoints and searches.

Owns: `metrics.py` (log-spectral and mel distances, PESQ, STOI, SNR), `perceptual.py` (DNSMOS,
ViSQOL), `evaluate.py` (scoring a run on held-out or unseen utterances against Griffin-Lim
alone, every network evaluation counted), `compare.py` (samplers side by side),
`learning_curve.py` (quality against training steps and seconds), `schedule_search.py` (the
paper's noise-schedule grid search, resumable: the driver and a checkpoint's search) with
`schedule_candidates.py` (candidate space and search methods), `schedule_state.py` (scores on
disk, the fingerprint that guards a resume) and `schedule_scoring.py` (the model's LS-MSE scorer,
sharded), `time_grid_search.py` (flow time grids),
`aliasing.py` (the aliasing measure on high-F0 tones). May import: inference, training and every
package below; nothing of studies. This is the evaluator edge.
"""
