"""The convergence plot of a run (needs matplotlib: the ``sim`` extra)."""

from __future__ import annotations

from pathlib import Path

from meshcrew.sim.metrics import CurvePoint
from meshcrew.sim.params import DAY


def plot_convergence(name: str, description: str, curve: list[CurvePoint], path: Path) -> None:
    """Write a PNG: deliveries done (of the records made so far) and missing, over days."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [p.at / DAY for p in curve]
    share = [100.0 * p.done / p.expected if p.expected else 100.0 for p in curve]
    missing = [max(p.expected - p.done, 0) for p in curve]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    top.plot(days, share, color="#2a7f62", linewidth=1.2)
    top.set_ylabel("deliveries done (%)")
    top.set_ylim(min(share, default=0.0) - 2, 101)
    top.set_title(f"{name}: {description}", fontsize=10)
    top.grid(alpha=0.3)
    bottom.fill_between(days, missing, step="post", color="#c0504d", alpha=0.6, linewidth=0)
    bottom.set_ylabel("missing deliveries")
    bottom.set_xlabel("simulated days")
    if any(missing):
        bottom.set_yscale("symlog", linthresh=10)
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
