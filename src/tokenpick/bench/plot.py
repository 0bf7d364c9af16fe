"""``--plot FILE.png``: time per row against V, one panel per operation and kind of
logits, at the smallest B of the run (needs matplotlib)."""

import math

from .cases import OPS
from .timing import FLOOR, TOKENPICK

HINT = 'error: --plot needs matplotlib; install it with: pip install "tokenpick[plot]"'


def agg_figure_factory():
    """A function making matplotlib figures drawn by the Agg backend.

    Raises ImportError without matplotlib: the run calls it before timing anything.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_figure(**kwargs):
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure

    return new_figure


def plot_panel(ax, results, peers):
    """Time per row against V for every library on one operation and kind of logits."""
    results = sorted(results, key=lambda r: r.V)
    vocabs = [r.V for r in results]
    for name in (TOKENPICK.name, *(p.name for p in peers), FLOOR.name):
        times = [r.timings[name].us_per_row for r in results]
        style = {"linestyle": "--", "color": "0.4"} if name == FLOOR.name else {}
        ax.plot(
            vocabs, [math.nan if t is None else t for t in times], marker="o", label=name, **style
        )
    ax.set(xscale="log", yscale="log")
    ax.set_xticks(vocabs, [f"{v:,}" for v in vocabs])
    ax.set_xticks([], minor=True)


def write_plot(path, new_figure, results, peers):
    """Save to `path` a PNG grid of `plot_panel`: operations by kinds of logits,
    at the smallest B of `results`."""
    B = min(r.B for r in results)
    kinds = list(dict.fromkeys(r.logits for r in results))
    figure = new_figure(figsize=(4.5 * len(kinds), 2.6 * len(OPS)), layout="constrained")
    axes = figure.subplots(len(OPS), len(kinds), squeeze=False, sharex="col")
    for row, op in zip(axes, OPS):
        for ax, kind in zip(row, kinds):
            plot_panel(ax, [r for r in results if (r.op, r.logits, r.B) == (op, kind, B)], peers)
            ax.set_title(f"{op.label}, {kind} logits", fontsize="medium")
    axes[0][0].legend(fontsize="small")
    figure.supxlabel("V (vocabulary size)")
    figure.supylabel("us per row (log scale)")
    figure.suptitle(f"tokenpick and its peers: time per row at B={B}, the smallest B of the run")
    figure.savefig(path, format="png", dpi=100)
