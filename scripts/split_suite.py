#!/usr/bin/env python3
"""Split test files into two halves of about equal run time, for the two
sanitized test processes of scripts/test.sh (one per core).

    python scripts/split_suite.py JUNIT.xml tests/test_a.py tests/test_b.py ...

Weights are each file's test time in JUNIT.xml (the optimised run just before,
pytest --junitxml); a file missing from it weighs the median.  The heaviest
files go first, each to the lighter half (longest processing time first).
Prints the two halves, one per line, files separated by spaces."""

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


def main(argv):
    junit, files = argv[1], argv[2:]
    w = weights(junit)
    default = statistics.median(w.values()) if w else 1.0
    halves = [[], []]
    load = [0.0, 0.0]
    for f in sorted(files, key=lambda f: (-w.get(f, default), f)):
        i = 0 if load[0] <= load[1] else 1
        halves[i].append(f)
        load[i] += w.get(f, default)
    for h in halves:
        print(" ".join(sorted(h)))
    print("split: %.0f s + %.0f s of optimised test time" % tuple(load), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
