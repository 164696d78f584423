"""The C core is layered as its data flow: each file includes only the layers
below it (docs/architecture.md, "Source layout").  A file added to csrc/ must be
given its layer here; an include of a layer above (or beside) fails."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")

# Lowest first.  A file may include files of strictly lower layers, and its own
# header (session.c -> session.h).
LAYERS = [
    ("the ABI", ["fh_api.h"]),
    ("common helpers", ["fh_common.h"]),
    ("histograms", ["hist.h", "hist.c"]),
    ("clock", ["tsc.h", "tsc.c"]),
    # The message tables (plain X-macro data): ITCH 5.0, and Cboe PITCH beside it.
    ("message tables", ["itch_spec.h", "pitch_spec.h"]),
    ("wire formats", ["net.h", "mold.h", "mold.c", "itch.h", "itch.c", "soup.h", "soup.c",
                      "pitch.h", "pitch.c"]),
    ("shared memory", ["shm.h", "shm.c"]),
    ("books", ["book.h"]),
    ("publish", ["publish.h", "publish.c"]),
    ("book apply", ["book.c"]),
    ("re-request client", ["rerequest.h", "rerequest.c"]),
    ("session", ["session.h", "session.c"]),
    ("pipeline", ["pipeline.h", "pipeline.c"]),
    # Cboe PITCH past the session layer: units into book operations.
    ("PITCH decode", ["pitch_pipe.c"]),
    ("book dump", ["dump.c"]),
    ("snapshot recovery", ["snapshot.c"]),
    ("source interface", ["src.h", "dpdk/fh_dpdk.h"]),
    ("sources", ["src_pcap.c", "src_binfile.c", "dpdk/src_dpdk.c"]),
    ("input", ["input.c"]),
    # The rewind server's capture index: the input layer and walkers in index mode.
    ("capture index", ["index.c"]),
    # GLIMPSE snapshots: a replay's books written back out as ITCH messages.
    ("snapshot builder", ["glimpse.c"]),
    # Beside the pipeline, not in it: a stateless frame decode for tools, and
    # the compile-time layout checks of everything Python sees.
    ("tools", ["frame_decode.c", "layout.c"]),
]
# Extensions of their own (generator, test probes): they may use the core's
# headers; the core never includes them.
TOOL_DIRS = ("gen", "probe")

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def rank_of():
    ranks = {}
    for i, (_, files) in enumerate(LAYERS):
        for f in files:
            ranks[f] = i
    return ranks


def c_files():
    out = []
    for dirpath, _, names in os.walk(CSRC):
        for n in names:
            if n.endswith((".c", ".h")):
                out.append(os.path.relpath(os.path.join(dirpath, n), CSRC))
    return sorted(out)


def includes(rel):
    with open(os.path.join(CSRC, rel)) as f:
        text = f.read()
    base = os.path.dirname(rel)
    out = []
    for inc in INCLUDE.findall(text):
        # As the compiler looks: beside the including file, then csrc/ (the include path).
        beside = os.path.normpath(os.path.join(base, inc))
        out.append(beside if os.path.exists(os.path.join(CSRC, beside)) else os.path.normpath(inc))
    return out


def violations(ranks):
    bad = []
    for rel in c_files():
        if rel.split(os.sep)[0] in TOOL_DIRS:
            for inc in includes(rel):
                if inc not in ranks and inc.split(os.sep)[0] not in TOOL_DIRS:
                    bad.append(f"{rel} includes {inc}, which is not a core file")
            continue
        if rel not in ranks:
            bad.append(f"{rel} has no layer: add it to LAYERS in tests/test_layers.py")
            continue
        own = os.path.splitext(rel)[0] + ".h"
        for inc in includes(rel):
            if inc.split(os.sep)[0] in TOOL_DIRS:
                bad.append(f"{rel} includes {inc}: the core never includes a tool")
            elif inc not in ranks:
                bad.append(f"{rel} includes {inc}, which has no layer")
            elif inc != own and ranks[inc] >= ranks[rel]:
                bad.append(f"{rel} ({LAYERS[ranks[rel]][0]}) includes {inc} ({LAYERS[ranks[inc]][0]}): "
                           "not a lower layer")
    return bad


def test_every_include_goes_down_a_layer():
    assert violations(rank_of()) == []


def test_the_check_catches_an_upward_include(tmp_path, monkeypatch):
    """The check itself: session.c including pipeline.h (the cycle this layering
    removed) is reported."""
    real = includes

    def fake(rel):
        got = real(rel)
        return got + ["pipeline.h"] if rel == "session.c" else got

    monkeypatch.setitem(globals(), "includes", fake)
    bad = violations(rank_of())
    assert any(b.startswith("session.c (session) includes pipeline.h (pipeline)") for b in bad), bad


def test_every_listed_file_exists():
    missing = [f for _, files in LAYERS for f in files
               if not os.path.exists(os.path.join(CSRC, f))]
    assert missing == []


@pytest.mark.parametrize("stage,files", [
    ("session", ["session.h", "session.c"]),
    ("input", ["input.c"]),
    ("publish", ["publish.c"]),
    ("rerequest", ["rerequest.c"]),
])
def test_stages_have_their_files(stage, files):
    for f in files:
        assert os.path.exists(os.path.join(CSRC, f)), f"{stage}: {f}"
