"""The benchmark as a bar chart: average prediction time per runtime, one group per batch size,
log scale (runtimes differ by orders of magnitude). Needs matplotlib (extra ``bench``)."""

from __future__ import annotations

import os

from onnxpy.tools.bench import BenchReport

__all__ = ["plot_bench", "runtime_label"]


def runtime_label(runtime: str) -> str:
    """The legend's name: ``sklearn:/long/path/model.pkl`` -> ``sklearn:model.pkl``."""
    kind, sep, path = runtime.partition(":")
    return f"{kind}:{os.path.basename(path)}" if sep else runtime


def plot_bench(report: BenchReport, path: str | os.PathLike | None = None, dpi: int = 100):
    """Draw ``report`` (median latency per runtime and batch) and save a PNG at ``path``.

    Returns the matplotlib Figure: one bar per (runtime, batch) that has a measurement, in
    ``figure.axes[0].containers`` (one per runtime, labelled by :func:`runtime_label`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.6 * len(report.batches) * len(report.runtimes) / 2), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    n = len(report.runtimes)
    width = 0.8 / max(n, 1)
    groups = range(len(report.batches))
    for k, runtime in enumerate(report.runtimes):
        xs, heights = [], []
        for g, batch in zip(groups, report.batches):
            row = report.row(runtime, batch)
            if row is not None and not row.error and row.median_ms > 0:
                xs.append(g - 0.4 + width * (k + 0.5))
                heights.append(row.median_ms)
        bars = ax.bar(xs, heights, width=width * 0.95, label=runtime_label(runtime), color=f"C{k}")
        for rect, h in zip(bars, heights):
            ax.annotate(f"{h:.3g}", (rect.get_x() + rect.get_width() / 2, h), ha="center",
                        va="bottom", fontsize=7)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(list(groups))
    ax.set_xticklabels([f"batch {b}" for b in report.batches])
    ax.set_ylabel("median prediction time (ms, log scale)")
    ax.set_title(f"Prediction time per runtime: {os.path.basename(report.model)}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi, format="png")
    return fig
