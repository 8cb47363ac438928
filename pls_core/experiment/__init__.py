"""`pls experiment`: the paper's comparison of target-return optimisers, run in-process and batched.

settings (what to run, per-run optimiser configs) -> rollouts (batched episodes through one PolicyRunner)
-> loop (one optimiser run) + sweep (dense grid of targets, the regret reference) -> harness (all runs,
resume, progress) -> report (tables beside the paper's numbers, CSV/JSON) + figures.
Modules import their heavy dependencies lazily, so `pls --help` stays fast.
"""
