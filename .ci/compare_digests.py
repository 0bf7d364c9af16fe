"""Compare kernel_digest outputs (files given as arguments): every table of
every build must draw the same token for each (row, filter) as the others of
its element type (the part of the table's name after "/"), with
log-probabilities and log-sum-exp agreeing to 1e-5."""

import math
import re
import sys

LINE = re.compile(r"(\S+) n=(\d+) (\S+) filter=(\d+) token=(-?\d+) logprob=(\S+) lse=(\S+)")


def read(path):
    rows = {}
    for line in open(path):
        m = LINE.fullmatch(line.strip())
        if not m:
            sys.exit(f"FAIL: {path}: unreadable line {line!r}")
        table, n, kind, f, token, lp, lse = m.groups()
        rows.setdefault(table, {})[(int(n), kind, int(f))] = (int(token), float(lp), float(lse))
    return rows


def main(paths):
    runs = [(f"{path}:{table}", rows) for path in paths for table, rows in read(path).items()]
    groups = {}
    for name, rows in runs:
        groups.setdefault(name.rpartition("/")[2] if "/" in name else "", []).append((name, rows))
    for group in groups.values():
        compare(group)


def compare(runs):
    if len(runs) < 2:
        sys.exit(f"FAIL: fewer than two runs to compare: {[n for n, _ in runs]}")
    first_name, first = runs[0]
    for name, rows in runs[1:]:
        if rows.keys() != first.keys():
            sys.exit(f"FAIL: {name} and {first_name} ran different cases")
        for case, (token, lp, lse) in rows.items():
            want = first[case]
            if token != want[0]:
                sys.exit(f"FAIL: {case}: {name} drew {token}, {first_name} drew {want[0]}")
            for got, ref in ((lp, want[1]), (lse, want[2])):
                if not math.isclose(got, ref, rel_tol=1e-5, abs_tol=1e-5):
                    sys.exit(f"FAIL: {case}: {name} gives {got}, {first_name} {ref}")
    print(f"{len(runs)} runs agree on {len(first)} cases: " + ", ".join(n for n, _ in runs))


if __name__ == "__main__":
    main(sys.argv[1:])
