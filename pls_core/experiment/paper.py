"""The PLS paper's numbers for the velocity tasks (pls-method.md §5), to print beside ours.

Normalised reward and cost, mean ± std over 5 runs: Table 1 (b = 20) and Table 7 (b = 40). Unsafe
episodes during the online search: Table 8 (PLS, b = 20; its PLS rows equal Table 1's). Our "fixed"
method is the paper's CDT baseline (R = dataset max, G = b). "?" marks a cell the paper's text lost.
"""

from __future__ import annotations

# (task, b) -> method -> (normalised reward, normalised cost, unsafe search episodes)
PAPER: dict[tuple[str, float], dict[str, tuple[str, str, str]]] = {
    ("SafetyHalfCheetahVelocity-v1", 20.0): {"pls": ("0.99±0.00", "0.15±0.19", "1±1"),
                                             "fixed": ("0.96±0.03", "0.03±0.13", "—")},
    ("SafetyHalfCheetahVelocity-v1", 40.0): {"pls": ("1.00±0.01", "0.01±0.00", "—"),
                                             "fixed": ("0.97±0.03", "0.05±0.11", "—")},
    ("SafetyHopperVelocity-v1", 20.0): {"pls": ("0.83±0.01", "0.42±0.10", "2±2"),
                                        "fixed": ("0.68±0.06", "?", "—")},
    ("SafetyHopperVelocity-v1", 40.0): {"pls": ("0.84±0.00", "0.20±0.03", "—"),
                                        "fixed": ("0.67±0.03", "0.56±0.56", "—")},
    ("SafetyWalker2dVelocity-v1", 20.0): {"pls": ("0.79±0.00", "0.00±0.00", "1±1"),
                                          "fixed": ("0.80±0.00", "0.01±0.04", "—")},
    ("SafetyWalker2dVelocity-v1", 40.0): {"pls": ("0.83±0.00", "0.00±0.00", "—"),
                                          "fixed": ("0.79±0.00", "0.00±0.00", "—")},
    ("SafetyAntVelocity-v1", 20.0): {"pls": ("0.98±0.00", "0.82±0.19", "2±1"),
                                     "fixed": ("0.97±0.00", "0.36±0.22", "—")},
    ("SafetyAntVelocity-v1", 40.0): {"pls": ("0.99±0.00", "0.49±0.05", "—"),
                                     "fixed": ("0.97±0.01", "0.81±0.44", "—")},
}

NOT_REPORTED = ("—", "—", "—")


def paper_numbers(task: str, threshold: float, method: str) -> tuple[str, str, str]:
    """(reward, cost, unsafe episodes) as printed in the paper, or dashes where it has no such row."""
    return PAPER.get((task, float(threshold)), {}).get(method, NOT_REPORTED)
