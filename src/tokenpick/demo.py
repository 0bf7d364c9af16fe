"""The example every introduction to sampling uses, run through tokenpick.

``python -m tokenpick demo`` takes six candidate next words for "The weather
today is ..." and their logits, and shows, with tokenpick's public functions:

1. how temperature reshapes the distribution (`tokenpick.softmax`);
2. what top-k, top-p and min-p keep, renormalized (`tokenpick.mask`,
   `tokenpick.filtered_probs`);
3. seeded draws: the same seed and offset always give the same word, and
   draws over many offsets follow the probabilities (`tokenpick.sample`);
4. greedy decoding (`tokenpick.greedy`, or temperature 0).

``--plot FILE.png`` also draws the distribution at each temperature; it needs
matplotlib (``pip install "tokenpick[plot]"``).
"""

import argparse
import sys

import numpy as np

import tokenpick

SUMMARY = "temperature, top-k, top-p, min-p and seeded draws on six candidate words"

PROMPT = "The weather today is"
WORDS = ("wonderful", "cloudy", "nice", "hot", "gloomy", "delicious")
LOGITS = np.array([1.2, 2.0, 3.5, 3.0, 1.8, 1.0], dtype=np.float32)
TEMPERATURES = (0.1, 0.5, 1.0, 2.0)
FILTERS = (  # (column title, keyword arguments, what it keeps)
    ("top-k 3", {"top_k": 3}, "the 3 most likely words"),
    ("top-p 0.9", {"top_p": 0.9}, "the most likely words until their mass reaches 0.9"),
    ("min-p 0.2", {"min_p": 0.2}, "the words at least 0.2 times as likely as the top one"),
)
SEED = 42
SHOWN_OFFSETS = 8
DRAWS = 10_000
PLOT_HINT = 'error: --plot needs matplotlib; install it with: pip install "tokenpick[plot]"'

WORD_WIDTH = max(map(len, WORDS))


def heading(number, title, calls):
    """Print a numbered section title and the tokenpick calls it shows."""
    print(f"\n{number}. {title}\n   [{calls}]\n")


def table_line(word, cells, width=9):
    """One indented table line: a word, then right-aligned cells."""
    return f"   {word:<{WORD_WIDTH}}" + "".join(f"{c:>{width}}" for c in cells)


def fraction(p):
    """A probability as ``0.456``, or ``-`` for a word filtered out."""
    return f"{p:.3f}" if p > 0 else "-"


def show_temperatures():
    """Section 1: the softmax of the logits at each temperature."""
    heading(
        1,
        "Temperature: softmax(logits / T) sharpens (T < 1) or flattens (T > 1)",
        "tokenpick.softmax(logits, temperature=T)",
    )
    probs = [tokenpick.softmax(LOGITS, temperature=t) for t in TEMPERATURES]
    print(table_line("word", ["logit", *(f"T={t:g}" for t in TEMPERATURES)]))
    for i, word in enumerate(WORDS):
        print(table_line(word, [f"{LOGITS[i]:.1f}", *(f"{p[i]:.3f}" for p in probs)]))


def show_filters():
    """Section 2: the words each filter keeps at T = 1 and their renormalized probabilities."""
    heading(
        2,
        "Filters keep a subset of the words (at T=1), then renormalize",
        "tokenpick.mask(logits, top_k=3), tokenpick.filtered_probs(logits, top_k=3), ...",
    )
    probs = tokenpick.softmax(LOGITS)
    order = np.argsort(-probs, kind="stable")
    filtered = [tokenpick.filtered_probs(LOGITS, **kwargs) for _, kwargs, _ in FILTERS]
    print(
        table_line("word", ["p(T=1)", "cumulative", *(title for title, _, _ in FILTERS)], width=12)
    )
    for i, cumulative in zip(order, np.cumsum(probs[order])):
        cells = [fraction(probs[i]), f"{cumulative:.3f}", *(fraction(f[i]) for f in filtered)]
        print(table_line(WORDS[i], cells, width=12))
    print()
    for title, kwargs, meaning in FILTERS:
        kept = np.isfinite(tokenpick.mask(LOGITS, **kwargs))
        words = ", ".join(WORDS[i] for i in order if kept[i])
        print(f"   {title:<9} keeps {meaning}: {words}")


def show_draws():
    """Section 3: seeded draws, their reproducibility, and their frequencies."""
    heading(
        3,
        f"Seeded sampling: the word is a pure function of (seed, offset); seed={SEED}",
        "tokenpick.sample(logits, seed=42, offset=n)",
    )
    offsets = range(SHOWN_OFFSETS)
    first = [WORDS[tokenpick.sample(LOGITS, seed=SEED, offset=n)] for n in offsets]
    again = [WORDS[tokenpick.sample(LOGITS, seed=SEED, offset=n)] for n in offsets]
    width = WORD_WIDTH + 1
    print(table_line("offset", offsets, width))
    print(table_line("draw", first, width))
    print(table_line("again", again, width))
    verdict = "the same words" if first == again else "DIFFERENT words (a bug)"
    print(f"\n   Drawing again with the same seed and offsets gives {verdict}.")

    batch = np.tile(LOGITS, (DRAWS, 1))
    tokens = tokenpick.sample(batch, seed=SEED, offset=np.arange(DRAWS))
    counts = np.bincount(tokens, minlength=len(WORDS))
    probs = tokenpick.softmax(LOGITS)
    print(f"\n   {DRAWS} draws, one row per offset 0..{DRAWS - 1}, against the probabilities:\n")
    print(table_line("word", ["p(T=1)", "drawn", "frequency"], width=11))
    for i in np.argsort(-probs, kind="stable"):
        print(
            table_line(
                WORDS[i], [f"{probs[i]:.3f}", counts[i], f"{counts[i] / DRAWS:.3f}"], width=11
            )
        )


def show_greedy():
    """Section 4: greedy decoding, and temperature 0 as greedy."""
    heading(
        4,
        "Greedy: always the most likely word",
        "tokenpick.greedy(logits), tokenpick.sample(logits, temperature=0)",
    )
    greedy = WORDS[tokenpick.greedy(LOGITS)]
    cold = WORDS[tokenpick.sample(LOGITS, temperature=0, seed=SEED)]
    print(f"   greedy:        {PROMPT} {greedy}.")
    print(f"   sample at T=0: {PROMPT} {cold}.")


def figure_class():
    """matplotlib's Figure class, or None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def plot_temperatures(figure_cls, path):
    """Save one bar chart of the distribution per temperature to `path`."""
    fig = figure_cls(figsize=(3.2 * len(TEMPERATURES), 3.6), layout="constrained")
    axes = fig.subplots(1, len(TEMPERATURES), sharey=True)
    for ax, t in zip(axes, TEMPERATURES):
        bars = ax.bar(WORDS, tokenpick.softmax(LOGITS, temperature=t), color="tab:blue")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_title(f"T = {t:g}")
        ax.set_ylim(0, 1.08)
        for label in ax.get_xticklabels():
            label.set(rotation=45, horizontalalignment="right", rotation_mode="anchor")
    axes[0].set_ylabel("probability")
    fig.suptitle(f'"{PROMPT} ...": next-word probabilities, softmax(logits / T)')
    fig.savefig(path, dpi=120)


def configure_parser(parser):
    """Add the demo's options to an argparse parser."""
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the distributions at each temperature to FILE.png "
        '(needs matplotlib: pip install "tokenpick[plot]")',
    )
    return parser


def run(args):
    """Run the demo for parsed options; return the exit status."""
    figure_cls = figure_class() if args.plot else None
    if args.plot and figure_cls is None:
        print(PLOT_HINT, file=sys.stderr)
        return 1
    print(f'tokenpick {tokenpick.__version__} demo: six candidate next words for "{PROMPT} ..."')
    print("   logits: " + ", ".join(f"{w} {x:.1f}" for w, x in zip(WORDS, LOGITS)))
    show_temperatures()
    show_filters()
    show_draws()
    show_greedy()
    if args.plot:
        try:
            plot_temperatures(figure_cls, args.plot)
        except OSError as exc:
            print(f"error: cannot write {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"\nplot written to {args.plot}")
    return 0


def main(argv=None):
    """Entry point of ``python -m tokenpick demo``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = configure_parser(
        argparse.ArgumentParser(
            prog="python -m tokenpick demo",
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return run(parser.parse_args(argv))
