"""scripts/setup.sh against a stub apt: a held lock is waited for, a package
the sources lack is reported and skipped, any other apt failure stops set-up
with apt's own error; the build's stamp changes with what the machine offers
(so a build made before libdpdk-dev or libzstd-dev was installed is rebuilt)."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = os.path.join(ROOT, "scripts", "setup.sh")

APT_GET = r"""#!/bin/bash
# stub apt-get: "update" fails with a lock message $LOCKED times, then works;
# "install" fails as $INSTALL_FAILS says, else records its packages.
echo "$*" >> "$STUB/calls"
case " $* " in
  *" update "*)
    n=$(cat "$STUB/update_tries" 2>/dev/null || echo 0); echo $((n + 1)) > "$STUB/update_tries"
    if [ "$n" -lt "${LOCKED:-0}" ]; then
        echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2; exit 100
    fi;;
  *" install "*)
    if [ -n "${INSTALL_FAILS:-}" ]; then echo "$INSTALL_FAILS" >&2; exit 100; fi
    echo "$*" >> "$STUB/installed";;
esac
exit 0
"""

APT_CACHE = r"""#!/bin/bash
# stub apt-cache policy: $ABSENT lists the packages the sources lack.
p=$2
echo "$p:"; echo "  Installed: (none)"
case " $ABSENT " in *" $p "*) echo "  Candidate: (none)";; *) echo "  Candidate: 1.0-1";; esac
"""


def stub_path(tmp_path, hide=(), pkgconfig_missing=()):
    """A PATH of links to every program but those hidden, with stub apt tools
    (and a pkg-config that denies the modules in pkgconfig_missing)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("apt-get", APT_GET), ("apt-cache", APT_CACHE)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    if pkgconfig_missing:
        real = subprocess.run(["bash", "-c", "command -v pkg-config"], capture_output=True, text=True).stdout.strip()
        (bin_ / "pkg-config").write_text(
            '#!/bin/bash\nfor a; do case " %s " in *" $a "*) exit 1;; esac; done\n'
            'exec %s "$@"\n' % (" ".join(pkgconfig_missing), real)
        )
        (bin_ / "pkg-config").chmod(0o755)
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for n in os.listdir(d):
            if n in hide or (bin_ / n).exists() or os.path.lexists(bin_ / n):
                continue
            (bin_ / n).symlink_to(os.path.join(d, n))
    return str(bin_)


def setup(tmp_path, only, env=(), **kw):
    """setup.sh with FEEDHANDLER_SETUP_ONLY=only, on stub_path(tmp_path, **kw)."""
    stub = tmp_path / "stub"
    stub.mkdir(exist_ok=True)
    e = dict(
        os.environ,
        PATH=stub_path(tmp_path, **kw),
        STUB=str(stub),
        FEEDHANDLER_SETUP_ONLY=only,
        FEEDHANDLER_APT_RETRY_S="0.05",
        FEEDHANDLER_VENV=str(tmp_path / "venv"),
    )
    e.update(env)
    return subprocess.run(["bash", SETUP], capture_output=True, text=True, timeout=120, env=e), stub


def test_held_lock_is_waited_for_and_an_absent_package_is_skipped(tmp_path):
    p, stub = setup(tmp_path, "apt", {"LOCKED": "3", "ABSENT": "clang-14"}, hide=("tshark", "clang-14"))
    assert p.returncode == 0, p.stderr
    assert "apt is busy" in p.stderr
    assert int((stub / "update_tries").read_text()) == 4
    assert "no package clang-14 in this machine's apt sources" in p.stderr
    installed = (stub / "installed").read_text().split()
    assert "tshark" in installed and "clang-14" not in installed
    assert "-o DPkg::Lock::Timeout=" in (stub / "calls").read_text()


def test_a_failed_install_stops_with_apts_error(tmp_path):
    err = "E: Failed to fetch http://deb.debian.org/pool/main/t/tshark.deb  Connection failed"
    p, _ = setup(tmp_path, "apt", {"INSTALL_FAILS": err}, hide=("tshark",))
    assert p.returncode != 0
    assert err in p.stderr and "stopping" in p.stderr
    assert "not available" not in p.stderr


@pytest.mark.slow
def test_a_lock_never_released_stops_after_the_wait(tmp_path):
    p, stub = setup(tmp_path, "apt", {"LOCKED": "1000000", "FEEDHANDLER_APT_LOCK_S": "1"}, hide=("tshark",))
    assert p.returncode != 0
    assert "Could not get lock" in p.stderr and "stopping" in p.stderr


@pytest.mark.slow
def test_stamp_follows_what_the_machine_offers(tmp_path):
    """The stamp holds what pkg-config finds: the same sources on a machine
    that lost (or, read the other way, gained) libzstd and libdpdk stamp
    differently, so setup.sh rebuilds."""
    runs = {}
    for tag, kw in (
        ("real", {}),
        ("none", {"pkgconfig_missing": ("libzstd", "libdpdk")}),
        ("nozstd", {"env": {"FEEDHANDLER_NO_ZSTD": "1"}}),
    ):
        (tmp_path / tag).mkdir()
        p, _ = setup(tmp_path / tag, "stamp", **kw)
        assert p.returncode == 0, p.stderr
        runs[tag] = p.stdout.split()
    assert runs["none"][1:] == ["zstd=no", "dpdk=no"], runs
    assert runs["nozstd"][1] == "zstd=no", runs
    real = runs["real"]
    assert real[1] == (
        "zstd=yes" if subprocess.run(["pkg-config", "--exists", "libzstd"]).returncode == 0 else "zstd=no"
    )
    assert real[2] == (
        "dpdk=yes" if subprocess.run(["pkg-config", "--exists", "libdpdk"]).returncode == 0 else "dpdk=no"
    )
    for tag in ("none", "nozstd"):
        assert (runs[tag][0] == real[0]) == (runs[tag][1:] == real[1:]), (tag, runs)
