"""Per-step shield for the velocity tasks (PS2-RL backup + admissibility check + safeguard maps).

Runtime parts are numpy and MuJoCo only; torch appears only in the differentiable safeguard layers and in
training the backup policy. Entry point: `pls_core.shield.shield.Shield`.
"""
