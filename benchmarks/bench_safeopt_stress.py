"""The safety certificate under responses its kernel does not describe (pls_core/safeopt/stress.py).

For every stress family and N seeds, the same problems are run by:

* paper-kernel PLS: one cost kernel, the configured one (cost_lengthscale_factors [1]); the optimizer
  as it was before the kernel-robust certificate;
* PLS: the default kernel-robust certificate (safe only under every cost kernel in the set);
* GP-UCB: unconstrained, for scale;
* optionally (--episode) per-episode certificates (mean + 2 sd; the 0.9 quantile), with the robust and
  with the paper's kernel.

Printed per family and method: runs with any unsafe proposal (share, with its 95% Clopper-Pearson
interval), unsafe proposals per run, final target safe, median and mean regret (of the reward range, against
the best target reachable with J_g <= 0.8 b), certified share of the truly safe points (safe-set
growth), certified-but-unsafe points at the end, the proposals' mean P(one episode's cost > b) and the
runs with a proposal where that probability exceeds 0.1 (per-episode view).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_safeopt_stress.py [--seeds 100] [--episode]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from scipy.stats import beta  # noqa: E402

from pls_core.safeopt.stress import FAMILIES, run_stress, sample_problem  # noqa: E402

METHODS = {
    "paper-kernel PLS": ("pls", {"cost_lengthscale_factors": [1.0]}),
    "PLS (robust)": ("pls", {}),
    "GP-UCB": ("gp_ucb", {}),
}
VARIANT_METHODS = {  # other kernel sets (--variants)
    "isotropic 1,1/2,1/4": ("pls", {"cost_lengthscale_factors": [1.0, 0.5, 0.25]}),
    "isotropic 1, 1/4": ("pls", {"cost_lengthscale_factors": [1.0, 0.25]}),
    "evidence 3 nats": ("pls", {"cost_kernel_evidence": 3.0}),
}
EPISODE_METHODS = {
    "PLS mean+2sd": ("pls", {"episode_cost_margin_sd": 2.0}),
    "PLS q0.9": ("pls", {"episode_cost_quantile": 0.9}),
    "paper-k. mean+2sd": ("pls", {"cost_lengthscale_factors": [1.0], "episode_cost_margin_sd": 2.0}),
    "paper-k. q0.9": ("pls", {"cost_lengthscale_factors": [1.0], "episode_cost_quantile": 0.9}),
}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--episode", action="store_true", help="also the per-episode certificates")
    parser.add_argument("--variants", action="store_true", help="only the other kernel sets")
    parser.add_argument("--kernel-set", action="append", default=[], metavar="JSON",
                        help="only PLS with this cost_lengthscale_factors, e.g. '[1, [0.33, 1], [1, 0.33]]' "
                             "(repeatable)")
    args = parser.parse_args()
    methods = VARIANT_METHODS if args.variants else {**METHODS, **(EPISODE_METHODS if args.episode else {})}
    if args.kernel_set:
        import json

        methods = {text.replace(" ", ""): ("pls", {"cost_lengthscale_factors": json.loads(text)})
                   for text in args.kernel_set}
    header = (f"{'family':18s} {'method':17s} {'runs unsafe':>11s} {'95% CI':>13s} {'unsafe/run':>10s} "
              f"{'final safe':>10s} {'regret med':>10s} {'mean':>6s} {'safe share':>10s} {'false cert':>10s} "
              f"{'P(ep>b)':>7s} {'runs ep>10%':>11s} {'s':>5s}")
    print(header)
    for family in args.families.split(","):
        problems = [sample_problem(family, seed) for seed in range(args.seeds)]
        for label, (method, overrides) in methods.items():
            t0 = time.perf_counter()
            runs = [run_stress(p, method, seed=seed, **overrides) for seed, p in enumerate(problems)]
            n = len(runs)
            failed = sum(r["unsafe"] > 0 for r in runs)
            lo, hi = clopper_pearson(failed, n)
            regrets = [r["regret"] for r in runs]
            finite = [x for x in regrets if math.isfinite(x)]
            median = float(np.median(regrets))
            mean = float(np.mean(finite)) if len(finite) == n else math.inf
            avg = {key: float(np.mean([r[key] for r in runs]))
                   for key in ("unsafe", "final_safe", "safe_share", "false_certificates", "exceedance")}
            episode_failed = sum(r["episode_unsafe"] > 0 for r in runs)
            print(f"{family:18s} {label:17s} {failed:4d}/{n:<3d} {failed / n:4.2f} [{lo:.2f},{hi:.2f}]"
                  f" {avg['unsafe']:10.2f} {avg['final_safe']:10.2f} {median:10.3f} {mean:6.3f}"
                  f" {avg['safe_share']:10.2f} {avg['false_certificates']:10.2f} {avg['exceedance']:7.3f}"
                  f" {episode_failed:7d}/{n:<3d} {time.perf_counter() - t0:5.0f}", flush=True)


if __name__ == "__main__":
    main()
