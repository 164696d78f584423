#!/usr/bin/env python3
"""What a test run must have run: scripts/test.sh's guard against a green run
that never tested a whole area.

    check_run.py expect                 which optional components this machine
                                        has, and which its platform promises;
                                        exit 1 naming each promised one missing
    check_run.py junit PASS FILE...     the junit XML of one pytest pass (its
                                        halves, for the sanitized pass): exit 1
                                        on a failure, on a skip that
                                        tests/expected_skips.toml does not allow
                                        here, or on fewer tests run than its floor

Components are what whole areas of the suite need: zstd input support in the
core, the DPDK extension, clang-14 with libFuzzer, tshark, root with network
namespaces, two CPUs.  On Debian 12 as root, scripts/setup.sh installs the
packages behind the first four and the machine is root: they are promised,
and a missing one fails the run.  Elsewhere (a laptop, a container without
root) each may be missing; the tests that need it then skip, and only the
skips tests/expected_skips.toml ties to a component that is really missing
here are allowed.  Two CPUs are never promised (the hardware is what it is),
but a "needs 2 CPUs" skip on a machine that has them fails the run as well.

PASS is a floor's name in tests/expected_skips.toml: optimised, sanitized or
quick; `--no-floor` skips the count check (a run given a subset of tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED = os.path.join(ROOT, "tests", "expected_skips.toml")

try:
    import tomllib as _toml
except ImportError:  # Python < 3.11
    import tomli as _toml  # type: ignore[no-redef]


def _zstd() -> bool:
    """The core reads zstd, and the zstd program (which the tests compress with) is here."""
    from feedhandler.core import build_features

    return bool(build_features()["zstd"]) and shutil.which("zstd") is not None


def _dpdk() -> bool:
    from feedhandler.dpdk import available

    return bool(available())


def _fuzz() -> bool:
    return (
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "fuzz.sh"), "--check"], capture_output=True).returncode
        == 0
    )


def _netns() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("ip") is not None
        and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0
    )


def _cpus2() -> bool:
    return len(os.sched_getaffinity(0)) >= 2


# name -> (what it is and how to get it, check, promised on Debian 12 as root)
COMPONENTS = {
    "zstd": (
        "zstd input support in the C core and the zstd program (apt install libzstd-dev zstd, then "
        "scripts/setup.sh rebuilds)",
        _zstd,
        True,
    ),
    "dpdk": (
        "the DPDK extension feedhandler._dpdk (apt install libdpdk-dev, then scripts/setup.sh rebuilds)",
        _dpdk,
        True,
    ),
    "fuzz": ("clang-14 with libFuzzer for scripts/fuzz.sh (apt install clang-14 libclang-rt-14-dev)", _fuzz, True),
    "tshark": (
        "tshark, to check generated captures (apt install tshark)",
        lambda: shutil.which("tshark") is not None,
        True,
    ),
    "netns": ("root with iproute2 network namespaces (veth pairs)", _netns, True),
    "root": ("running as root (tests that give a file to another user)", lambda: os.geteuid() == 0, True),
    "cpus2": ("two CPUs (two pinned lanes)", _cpus2, False),
}


def promised_platform() -> bool:
    """Debian 12 as root: everything setup.sh can install is promised.
    FEEDHANDLER_PROMISED=1 promises it anywhere (only ever stricter: the
    tests of this script use it)."""
    if os.environ.get("FEEDHANDLER_PROMISED") == "1":
        return True
    try:
        with open("/etc/debian_version") as f:
            debian12 = f.read().strip().startswith("12")
    except OSError:
        debian12 = False
    return debian12 and os.geteuid() == 0


def survey() -> dict:
    """{component: (present, promised)} for this machine."""
    promised = promised_platform()
    return {k: (bool(check()), promised and must) for k, (_, check, must) in COMPONENTS.items()}


def cmd_expect() -> int:
    comps = survey()
    where = "Debian 12 as root" if promised_platform() else "not Debian 12 as root"
    missing = [k for k, (have, must) in comps.items() if must and not have]
    absent = [k for k, (have, must) in comps.items() if not must and not have]
    print("check: %s; has %s" % (where, ", ".join(k for k, (h, _) in comps.items() if h) or "none"))
    for k in absent:
        print("check: without %s here: the tests that need it skip (allowed off Debian 12/root)" % COMPONENTS[k][0])
    if missing:
        for k in missing:
            print("check: MISSING %s: %s" % (k, COMPONENTS[k][0]), file=sys.stderr)
        print("check: this platform promises them; a run without them would skip whole areas", file=sys.stderr)
        return 1
    return 0


def _test_id(case: ET.Element) -> str:
    """tests/test_x.py::name[param] from junit's classname (tests.test_x[.Class]) and name."""
    parts = case.get("classname", "").split(".")
    mod = [p for p in parts if p.startswith("test_")]
    i = parts.index(mod[0]) if mod else len(parts) - 1
    path = "/".join(parts[: i + 1]) + ".py"
    return "::".join([path] + parts[i + 1 :] + [case.get("name", "")])


def _allowed(rule: dict, test: str, message: str, comps: dict) -> bool:
    if not test.startswith(rule["test"]):
        return False
    if rule["reason"] not in message:
        return False
    need = rule["needs"]
    have, must = comps[need]
    return not have and not must


def cmd_junit(pass_name: str, files: list, floor: bool) -> int:
    with open(ALLOWED, "rb") as f:
        cfg = _toml.load(f)
    rules = cfg.get("skip", [])
    for r in rules:
        assert r["needs"] in COMPONENTS, "expected_skips.toml: unknown component %r" % r["needs"]
    comps = survey()
    ran = skipped = failed = allowed = 0
    bad = []
    for path in files:
        for case in ET.parse(path).getroot().iter("testcase"):
            tid = _test_id(case)
            sk = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif sk is not None:
                skipped += 1
                msg = (sk.get("message") or "") + " " + (sk.text or "")
                if any(_allowed(r, tid, msg, comps) for r in rules):
                    allowed += 1
                else:
                    bad.append("%s: %s" % (tid, msg.strip()))
            else:
                ran += 1
    want = cfg["floor"][pass_name]
    print("check: %s pass: %d tests ran, %d skipped, %d failed (floor %d)" % (pass_name, ran, skipped, failed, want))
    rc = 0
    if failed:
        print("check: %s pass: %d tests failed" % (pass_name, failed), file=sys.stderr)
        rc = 1
    if bad:
        print(
            "check: %s pass: %d skips not allowed here (tests/expected_skips.toml):" % (pass_name, len(bad)),
            file=sys.stderr,
        )
        for b in bad:
            print("    " + b, file=sys.stderr)
        rc = 1
    # An allowed skip (a component this machine lacks and is not promised)
    # counts towards the floor: the floor catches tests that vanished, and
    # the allowlist already judged these.
    if floor and ran + allowed < want:
        print(
            "check: %s pass: only %d tests ran (and %d allowed skips), below the floor of %d "
            "(tests/expected_skips.toml): a whole file or area went missing" % (pass_name, ran, allowed, want),
            file=sys.stderr,
        )
        rc = 1
    return rc


def main(argv: list) -> int:
    if argv[:1] == ["expect"]:
        return cmd_expect()
    if argv[:1] == ["junit"] and len(argv) >= 3:
        floor = "--no-floor" not in argv
        rest = [a for a in argv[1:] if a != "--no-floor"]
        return cmd_junit(rest[0], rest[1:], floor)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
