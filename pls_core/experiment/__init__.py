"""`pls experiment`: the paper's comparison of target-return optimizers, run in-process and batched.

settings (what to run, per-run optimizer configs) -> rollouts (batched episodes through one PolicyRunner)
-> loop (one optimizer run) + sweep (dense grid of targets, the regret reference) -> harness (all runs,
resume, progress) -> report (tables beside the paper's numbers, CSV/JSON) + figures.
Modules import their heavy dependencies lazily, so `pls --help` stays fast.
"""
