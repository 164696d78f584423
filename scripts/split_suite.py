#!/usr/bin/env python3
"""Split test files into two halves of about equal run time, for the two
sanitized test processes of scripts/test.sh (one per core).

    python scripts/split_suite.py [--recorded WEIGHTS.json] JUNIT.xml tests/test_a.py ...
    python scripts/split_suite.py --record WEIGHTS.json JUNIT.xml [JUNIT.xml ...]

Weights are each file's test time in JUNIT.xml (the optimised run just before,
pytest --junitxml), a file missing from it weighing the median.  AddressSanitizer
slows some files 1.5x and others 5x or more (the C core on large inputs), so
with --recorded a file's weight is its time in an earlier sanitized run, kept
in WEIGHTS.json (tests/data/sanitized_weights.json, written by --record from
that run's junit files), and a file not recorded there weighs its optimised
time times the median slowdown of the recorded files.  The heaviest files go
first, each to the lighter half (longest processing time first).  Prints the
two halves, one per line, files separated by spaces."""

import json
import statistics
import sys
import xml.etree.ElementTree as ET


def weights(junit):
    per_file = {}
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return per_file
    for case in root.iter("testcase"):
        parts = (case.get("classname") or "").split(".")
        if len(parts) >= 2:
            f = "%s/%s.py" % (parts[0], parts[1])
            per_file[f] = per_file.get(f, 0.0) + float(case.get("time") or 0)
    return per_file


def record(path, junits):
    """WEIGHTS.json from the junit files of a sanitized run (seconds per file)."""
    per_file = {}
    for j in junits:
        for f, t in weights(j).items():
            per_file[f] = per_file.get(f, 0.0) + t
    with open(path, "w") as f:
        json.dump({k: round(v, 1) for k, v in sorted(per_file.items())}, f, indent=1)
        f.write("\n")
    return 0


def main(argv):
    args = argv[1:]
    if args[:1] == ["--record"]:
        return record(args[1], args[2:])
    recorded = {}
    if args[:1] == ["--recorded"]:
        try:
            with open(args[1]) as f:
                recorded = json.load(f)
        except (OSError, ValueError):
            recorded = {}
        args = args[2:]
    junit, files = args[0], args[1:]
    w = weights(junit)
    if recorded:
        slow = [recorded[f] / w[f] for f in recorded if w.get(f, 0) > 0.5]
        factor = statistics.median(slow) if slow else 1.0
        w = {f: recorded.get(f, t * factor) for f, t in w.items()}
        for f, t in recorded.items():
            w.setdefault(f, t)
    default = statistics.median(w.values()) if w else 1.0
    halves = [[], []]
    load = [0.0, 0.0]
    for f in sorted(files, key=lambda f: (-w.get(f, default), f)):
        i = 0 if load[0] <= load[1] else 1
        halves[i].append(f)
        load[i] += w.get(f, default)
    for h in halves:
        print(" ".join(sorted(h)))
    print(
        "split: %.0f s + %.0f s of %s test time"
        % (load[0], load[1], "recorded sanitized" if recorded else "optimised"),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
