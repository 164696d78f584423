"""The C core is layered as its data flow: each file includes only the layers
below it (docs/architecture.md, "Source layout").  A file added to csrc/ must be
given its layer here; an include of a layer above (or beside) fails."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")

# Lowest first.  A file may include the headers of its own layer and of lower
# layers, never a higher layer's.
LAYERS = [
    ("the ABI", ["fh_api.h"]),
    ("common helpers", ["fh_common.h"]),
    ("histograms", ["hist.h", "hist.c"]),
    # The TSC clock, and a NIC's receive timestamps converted to it (arithmetic only).
    ("clock", ["tsc.h", "tsc.c", "dpdk/hw_clock.h"]),
    # A lane's latency measurement and pacing: histograms and the clock only.
    ("latency and pacing", ["latency.h", "pace.h"]),
    # The message tables (plain X-macro data): ITCH 5.0, and Cboe PITCH and IEX beside it.
    ("message tables", ["itch_spec.h", "pitch_spec.h", "iex_spec.h"]),
    (
        "wire formats",
        ["net.h", "mold.h", "mold.c", "itch.h", "itch.c", "soup.h", "soup.c", "pitch.h", "pitch.c", "iex.h", "iex.c"],
    ),
    ("shared memory", ["shm.h", "shm.c"]),
    # The books and the events they write as they apply messages; publishing
    # (slots, BBO) is the stage above, reached from the book only through the
    # hooks it sets (fh_publish_hooks).
    ("books", ["book.h", "book_events.h", "book.c"]),
    ("publish", ["publish.h", "publish.c"]),
    ("re-request client", ["rerequest.h", "rerequest.c"]),
    ("session", ["session.h", "session.c"]),
    # The lane's parts the pipeline holds but does not run: routing (lines,
    # protocols, venues, PITCH units) and the mailbox to the snapshot fetcher.
    ("lane parts", ["route.h", "route.c", "recovery_mailbox.h"]),
    ("pipeline", ["pipeline.h", "pipeline.c"]),
    # Cboe PITCH past the session layer: units into book operations.
    ("PITCH decode", ["pitch_pipe.h", "pitch_pipe.c"]),
    # IEX TOPS, DEEP and DEEP+ past the session layer: segments into book operations.
    ("IEX decode", ["iex_pipe.h", "iex_pipe.c"]),
    ("book dump", ["tools/dump.c"]),
    ("snapshot recovery", ["recovery.h", "recovery.c"]),
    # The lane put together: the pipeline handed the stages above it as hooks.
    ("lane assembly", ["lane.c"]),
    ("source interface", ["src.h", "dpdk/fh_dpdk.h", "dpdk/dpdk_port.h"]),
    ("sources", ["src_pcap.c", "src_binfile.c", "dpdk/src_dpdk.c", "dpdk/tx_dpdk.c"]),
    ("input", ["input.c"]),
    # The rewind server's capture index: the input layer and walkers in index mode.
    ("capture index", ["tools/index.c"]),
    # GLIMPSE snapshots: a replay's books written back out as ITCH messages.
    ("snapshot builder", ["tools/glimpse.c"]),
    # Beside the pipeline, not in it: a stateless frame decode for tools, and
    # the compile-time layout checks of everything Python sees.
    ("tools", ["tools/frame_decode.c", "tools/layout.c"]),
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
            elif inc != own and (ranks[inc] > ranks[rel] or (ranks[inc] == ranks[rel] and not inc.endswith(".h"))):
                bad.append(
                    f"{rel} ({LAYERS[ranks[rel]][0]}) includes {inc} ({LAYERS[ranks[inc]][0]}): "
                    "not its own layer's header nor a lower layer's"
                )
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
    missing = [f for _, files in LAYERS for f in files if not os.path.exists(os.path.join(CSRC, f))]
    assert missing == []


@pytest.mark.parametrize(
    "stage,files",
    [
        ("session", ["session.h", "session.c"]),
        # The lane's parts the pipeline holds but does not run: routing (lines,
        # protocols, venues, PITCH units) and the mailbox to the snapshot fetcher.
        ("lane parts", ["route.h", "route.c", "recovery_mailbox.h"]),
        ("input", ["input.c"]),
        ("publish", ["publish.c"]),
        ("rerequest", ["rerequest.c"]),
    ],
)
def test_stages_have_their_files(stage, files):
    for f in files:
        assert os.path.exists(os.path.join(CSRC, f)), f"{stage}: {f}"


# ------------------------------------------------------------------ calls
#
# Includes are half of the layering; calls are the other.  A `fh_*` function
# is declared in a header only (a prototype written by hand in a .c file has
# no header to keep it true), and a file uses only functions defined in its
# own layer or below: the pipeline reaches the stages above it through the
# hooks lane.c hands it (pipeline.h, fh_pipe_upper_t), never by name.

COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
# A file-scope function definition or declaration: at the start of a line, a
# return type, the name, the parameters, then `{` (definition) or `;` (declaration).
FUNCTION = re.compile(
    r"^(?P<head>[A-Za-z_][\w \t\*]*?)\b(?P<name>fh_\w+)\s*\((?P<params>[^;{}]*?)\)\s*(?P<end>[{;])", re.M
)
USE = re.compile(r"(?<!struct )(?<!union )(?<!enum )\b(fh_\w+)\b")  # a struct tag is not a function


def source(rel):
    """The file with comments and string/char literals blanked (same line count)."""
    with open(os.path.join(CSRC, rel)) as f:
        text = f.read()
    return COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def functions_of(rel):
    """(defined, declared): the fh_ functions rel defines (a body at file
    scope, FH_INLINE ones in headers included) and the ones it declares."""
    defined, declared = set(), set()
    for m in FUNCTION.finditer(source(rel)):
        if m.group("head").split()[0] in ("return", "else", "if", "while", "for", "switch", "case"):
            continue
        (defined if m.group("end") == "{" else declared).add(m.group("name"))
    return defined, declared


def call_violations(ranks):
    core = [rel for rel in c_files() if rel.split(os.sep)[0] not in TOOL_DIRS]
    where = {}
    parsed = {rel: functions_of(rel) for rel in core}
    for rel, (defined, _) in parsed.items():
        for name in defined:
            where.setdefault(name, rel)
    bad = []
    for rel in core:
        defined, declared = parsed[rel]
        if rel.endswith(".c"):
            for name in sorted(declared - defined):
                bad.append(f"{rel} declares {name}(): a prototype belongs in the callee's header")
        if rel not in ranks:
            continue
        text = source(rel)
        # A header's declarations are its interface, not uses (fh_api.h
        # declares the whole ABI; src.h the walkers its sources define).
        for name in sorted(set(USE.findall(text)) - defined - (declared if rel.endswith(".h") else set())):
            home = where.get(name)
            if home is None or home not in ranks or home == rel:
                continue
            if ranks[home] > ranks[rel]:
                bad.append(
                    f"{rel} ({LAYERS[ranks[rel]][0]}) uses {name}() of {home} "
                    f"({LAYERS[ranks[home]][0]}): a layer above it"
                )
    return bad


def test_no_call_goes_up_a_layer_and_no_prototype_in_a_c_file():
    assert call_violations(rank_of()) == []


def test_no_prototype_in_a_c_file_of_the_extensions():
    """The generator and the probes keep the same rule as the core: a function
    one file calls in another is declared in that file's header."""
    bad = []
    for rel in c_files():
        if rel.split(os.sep)[0] in TOOL_DIRS and rel.endswith(".c"):
            defined, declared = functions_of(rel)
            bad += [f"{rel} declares {n}()" for n in sorted(declared - defined)]
    assert bad == []
    # The check sees the generator's functions (or it could pass by seeing none).
    assert "fh_gen_run" in functions_of(os.path.join("gen", "gen.c"))[0]


def test_the_call_check_parses_what_the_core_defines():
    """The parse the check stands on finds the definitions it must (or it could
    pass by seeing nothing)."""
    defined, declared = functions_of("session.c")
    assert {"fh_session_init", "fh_session_packet", "fh_session_expire"} <= defined and not declared
    assert "fh_pipe_sequenced" in functions_of("pipeline.h")[0]  # FH_INLINE in a header
    assert "fh_pipe_create" in functions_of("pipeline.h")[1]
    assert "fh_lane_new" in functions_of("lane.c")[0]


def _mutant(monkeypatch, rel, extra):
    """The check run as if `extra` were appended to csrc/rel."""
    real = source

    def fake(r):
        return real(r) + ("\n" + extra if r == rel else "")

    monkeypatch.setitem(globals(), "source", fake)
    return call_violations(rank_of())


def test_the_call_check_catches_a_prototype_in_a_c_file(monkeypatch):
    """What pipeline.c did before lane.c: declaring recovery.c's functions itself."""
    bad = _mutant(monkeypatch, "pipeline.c", "void fh_recovery_poll(fh_lane_t *r);\n")
    assert any(b.startswith("pipeline.c declares fh_recovery_poll()") for b in bad), bad


def test_the_call_check_catches_a_call_up_a_layer(monkeypatch):
    """The session layer calling the pipeline, and the pipeline calling PITCH
    decode by name (what the hooks replaced), are both reported."""
    bad = _mutant(monkeypatch, "session.c", "static void up(fh_lane_t *r) { fh_pipe_poll_slow(r, 0); }\n")
    assert any(b.startswith("session.c (session) uses fh_pipe_poll_slow() of pipeline.c") for b in bad), bad
    bad = _mutant(
        monkeypatch, "pipeline.c", "static uint32_t up(fh_lane_t *r) { return fh_pipe_walk_pitch(r, 0, 0, 0, 0, 0); }\n"
    )
    assert any(b.startswith("pipeline.c (pipeline) uses fh_pipe_walk_pitch() of pitch_pipe.c") for b in bad), bad


def test_the_call_check_catches_the_book_calling_publish(monkeypatch):
    """The book/publish cycle this layering broke: the books reach publishing
    only through the hooks fh_publish_hooks sets, never by name."""
    bad = _mutant(monkeypatch, "book.c", "static void up(fh_book_t *b) { fh_publish_slot(b, 1); }\n")
    assert any(b.startswith("book.c (books) uses fh_publish_slot() of publish.c") for b in bad), bad


def test_the_include_check_catches_the_book_including_publish(monkeypatch):
    """book.c including publish.h (what it did before book_events.h) is an
    upward include."""
    real = includes

    def fake(rel):
        got = real(rel)
        return got + ["publish.h"] if rel == "book.c" else got

    monkeypatch.setitem(globals(), "includes", fake)
    bad = violations(rank_of())
    assert any(b.startswith("book.c (books) includes publish.h (publish)") for b in bad), bad


def test_the_call_check_allows_calls_down_and_within_a_layer(monkeypatch):
    bad = _mutant(monkeypatch, "input.c", "static void down(fh_session_t *s) { fh_session_expire(s, 0); }\n")
    assert bad == []
