#!/usr/bin/env python3
"""The live path at rate: `feedhandler send` -> a poll-mode driver -> `feedhandler run`.

Sender and handler are separate processes pinned to separate cores (--cpu-send,
--cpu-run), in the same run, on one generated day:

  1. throughput, in --runs alternating rounds: the day through `replay` at
     full speed (the reference rate), and once through each driver as fast as
     the handler takes it (the sender at --speed 0 with back-pressure,
     --tx-wait-us, so a full ring holds it back instead of dropping; books
     only, no latency stamps, one pass of the day);
  2. per driver, the highest rate sustained for --seconds with nothing lost:
     the sender's frames all received (the handler's packets), and imissed,
     rx_nombuf, gaps and the sender's TX drops all 0; rates tried from
     --rates, lowest first, stopping at the first that loses;
  3. per driver, latency at --latency-rates steady and at the first of them
     with --burst microbursts, in each of --modes: wire -> rx and wire ->
     published from the frames' transmit stamps (docs/latency.md);
  4. the pcap PMD's own full-speed rate on the same day (no sender);
  5. a PNG of the wire -> published distributions (--png).

Drivers: af_packet and af_xdp (a veth pair, the sender's end in a network
namespace, the same driver on both ends; needs root), memif (two DPDK processes over shared memory; needs hugepages:
scripts/dpdk/live_setup.sh --hugepages 512); a driver that cannot run here is
reported with the reason, never left out silently.  The day is sent with
--loop so a run lasts --seconds; sequence numbers are not rewritten, so after
the first pass the handler counts the repeats as duplicates: the loss check
counts frames, and latency is measured on frames that applied messages (the
first pass: generate a day of at least rate x 1 s messages for the latency
runs, --messages).  Every run is bounded (--duration, timeouts).  On a 2-core
VM sender and handler take both cores: no core is left for a reader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PCTS = ["p50", "p90", "p99", "p99_9", "p99_99", "max"]


def sh(*args, check=True):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=check)


class Veth:
    """A veth pair, the sender's end in namespace `ns` (removed on exit)."""

    def __init__(self, tag):
        self.ns, self.host, self.peer = "fhb%s" % tag, "fhbh%s" % tag, "fhbp%s" % tag

    def __enter__(self):
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host, "type", "veth", "peer", "name", self.peer)
        sh("ip", "link", "set", self.peer, "netns", self.ns)
        # No IPv6 on the pair: its neighbour discovery would be frames the handler counts.
        sh("sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % self.host, check=False)
        sh(
            "ip",
            "netns",
            "exec",
            self.ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.%s.disable_ipv6=1" % self.peer,
            check=False,
        )
        sh("ip", "link", "set", self.host, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.peer, "up")
        return self

    def __exit__(self, *exc):
        sh("ip", "link", "del", self.host, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


#: Drivers measured over a veth pair, the sender's end in a network namespace.
VETH_DRIVERS = ("af_packet", "af_xdp")

#: memif ring size, log2 descriptors (the PMD's rsize; its default is 10): set by --memif-ring.
MEMIF_RING = 10


def driver_args(driver, side, tag, veth=None):
    """EAL arguments for one side ("run" or "send") of a driver."""
    prefix = "fhb-%s-%s-%d" % (side, tag, os.getpid())
    if driver == "af_packet":
        iface = veth.host if side == "run" else veth.peer
        return (
            "--no-huge --no-pci -m 512 --file-prefix %s --log-level=error --vdev=net_af_packet0,iface=%s,framecnt=8192"
            % (
                prefix,
                iface,
            )
        )
    if driver == "af_xdp":
        # AF_XDP on both ends of the veth (native XDP on a veth, copy mode); the
        # sender's end is in the namespace.
        iface = veth.host if side == "run" else veth.peer
        return (
            "--no-huge --no-pci -m 512 --file-prefix %s --log-level=error "
            "--vdev=net_af_xdp0,iface=%s,start_queue=0,queue_count=1" % (prefix, iface)
        )
    if driver == "memif":
        # Copy mode over memfd-backed memory: no hugepages needed.
        sock = os.path.join(tempfile.gettempdir(), "fh-live-memif-%d-%s.sock" % (os.getpid(), tag))
        role = "server" if side == "run" else "client"
        return (
            "--no-huge --no-pci -m 512 --file-prefix %s --log-level=error "
            "--vdev=net_memif0,role=%s,socket=%s,socket-abstract=no,rsize=%d" % (prefix, role, sock, MEMIF_RING)
        )
    raise ValueError(driver)


def driver_missing(driver):
    """Why a driver cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if driver in VETH_DRIVERS and sh("ip", "netns", "list", check=False).returncode != 0:
        return "no ip netns (iproute2)"
    return None


def live_run(a, day, driver, rate, seconds, mode, burst=None, tag="x", latency=True, tx_wait_us=0, loop=None):
    """One send -> run pair; the handler's stats and latency, the sender's stats.
    rate 0: as fast as the sender goes (with tx_wait_us, as fast as the handler
    takes the frames: a full ring holds the sender back); loop: passes over the
    day (default: enough for `seconds` at `rate`)."""
    msgs = day["messages"]
    if loop is None:
        loop = max(1, int(rate * seconds // msgs) + 1) if seconds and rate else 1
    tmp = tempfile.mkdtemp(prefix="fh-live-")
    st_run, lat_run, st_send = (os.path.join(tmp, n) for n in ("run.json", "lat.json", "send.json"))
    veth = Veth(tag) if driver in VETH_DRIVERS else None
    ctx = veth if veth else open(os.devnull)
    with ctx:
        run_eal = "-l %d %s" % (a.cpu_run, driver_args(driver, "run", tag, veth))
        send_eal = "-l %d %s" % (a.cpu_send, driver_args(driver, "send", tag, veth))
        budget = (loop * msgs / rate if rate else max(seconds, 10) * 3) + 5
        run = subprocess.Popen(
            benchlib.fh(
                "run",
                "--dpdk",
                run_eal,
                "--mode",
                mode,
                "--duration",
                "%.1f" % (budget + 3),
                "--no-eos-stop",
                "--stats-json",
                st_run,
                *(["--latency-json", lat_run] if latency else []),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # "dpdk: port (...)": receiving (AF_XDP's libbpf and libxdp print
            # their own lines first, whatever --log-level says).
            seen = []
            for _ in range(100):  # bounded: a handler that never starts ends in EOF
                line = run.stderr.readline()
                seen.append(line)
                if not line or line.startswith("dpdk: port"):
                    break
            if not line.startswith("dpdk: port"):
                raise benchlib.BenchError("the handler did not start: %s%s" % ("".join(seen), run.stderr.read()))
            send = benchlib.fh(
                "send", day["pcap"], "--dpdk", send_eal, "--loop", loop, "--stats-json", st_send, "-q",
                # The port stays up until the handler has stopped (memif's driver
                # can crash a peer polling while the other side disconnects).
                "--linger", 120,
            )  # fmt: skip
            send += ["--rate", "%g" % rate] if rate else ["--speed", "0"]
            if tx_wait_us:
                send += ["--tx-wait-us", str(tx_wait_us)]
            if burst:
                send += ["--burst", burst]
            if veth:
                send = ["ip", "netns", "exec", veth.ns] + send
            tx = subprocess.Popen(send, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + budget + 60
                line = tx.stdout.readline()  # "sent N frames ...": done, lingering
                if not line.startswith("sent ") or time.monotonic() > deadline:
                    raise benchlib.BenchError("the sender failed: %s%s" % (line, tx.stderr.read()[-2000:]))
                time.sleep(1.0)  # the last frames drain
                run.send_signal(2)
                run.wait(timeout=60)
                tx.terminate()
                tx.wait(timeout=60)
            finally:
                if tx.poll() is None:
                    tx.kill()
                    tx.wait()
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    try:
        with open(st_run) as f:
            rs = json.load(f)
        with open(st_send) as f:
            ss = json.load(f)
        lat = None
        if os.path.exists(lat_run):
            with open(lat_run) as f:
                lat = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The sender's frames against the handler's MoldUDP64 packets (a veth also
    # carries the kernel's own frames, which the handler counts as packets).
    lost = ss["frames"] - rs["mold_packets"]
    return {
        "driver": driver,
        "rate": rate,
        "mode": mode,
        "burst": burst,
        "loop": loop,
        "sent_frames": ss["frames"],
        "sent_msgs_per_s": ss["msgs_per_s"],
        "tx_dropped": ss["tx_dropped"],
        "received_packets": rs["mold_packets"],
        "frames_lost": lost,
        # Messages: those applied plus those seen again (a repeated pass, the
        # other line), against the sender's; frames lost that carried none
        # (heartbeats) lose no message.
        "messages_lost": ss["messages"] - rs["messages"] - rs.get("duplicates", 0),
        "imissed": rs.get("nic_imissed", 0),
        "rx_nombuf": rs.get("nic_rx_nombuf", 0),
        "gaps": rs["gaps"],
        "lossless": lost == 0
        and not ss["tx_dropped"]
        and not rs.get("nic_imissed")
        and not rs.get("nic_rx_nombuf")
        and not rs["gaps"],
        "latency": {
            k: {p: lat["stages"][k][p] for p in PCTS}
            for k in ("wire_to_rx", "wire_to_published", "rx_to_published", "processing")
            if lat and k in lat["stages"]
        },
        "rx_clock": lat.get("rx_clock") if lat else None,
        "distribution": lat["stages"].get("wire_to_published", {}).get("distribution") if lat else None,
    }


def fmt_ns(v):
    return "%.2f us" % (v / 1e3) if v >= 1000 else "%d ns" % v


def main():
    ap = benchlib.arguments(
        __doc__,
        epilog=True,
        messages=2_000_000,
        symbols=500,
        seed=7,
        runs=(3, "rounds of the throughput comparison (replay, then each driver with back-pressure); medians"),
        dir="fh-live",
        json="write everything here",
    )
    ap.add_argument("--cpu-send", type=int, default=0, help="core of the sender (default 0)")
    ap.add_argument("--cpu-run", type=int, default=1, help="core of the handler (default 1)")
    ap.add_argument(
        "--drivers", default="af_packet,af_xdp,memif", help="drivers to measure (default af_packet,af_xdp,memif)"
    )
    ap.add_argument("--rates", default="250e3,500e3,1e6,2e6,5e6,10e6", help="sustained-rate ladder, msgs/s")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each sustained run (default 10)")
    ap.add_argument("--latency-rates", default="1e6,5e6,10e6", help="steady rates for latency, msgs/s")
    ap.add_argument("--burst", default="10:1:1", help="microburst for the first latency rate (default 10:1:1)")
    ap.add_argument("--modes", default="book,publish", help="handler modes for latency (default book,publish)")
    ap.add_argument("--png", help="plot the wire -> published distributions here")
    ap.add_argument(
        "--memif-ring",
        type=int,
        default=10,
        metavar="LOG2",
        help="memif ring size, log2 descriptors (the PMD's rsize, 1..14; default 10: its default, 1024)",
    )
    ap.add_argument("--jitter-s", type=float, default=3.0, help="seconds of the machine jitter probe (0: skip)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 200 K messages, 2 s, two rates")
    a = ap.parse_args()
    global MEMIF_RING
    if not 1 <= a.memif_ring <= 14:
        ap.error("--memif-ring must be 1..14")
    MEMIF_RING = a.memif_ring
    out_ring = {"memif_ring_descriptors": 1 << a.memif_ring}
    if a.quick:
        a.messages, a.seconds, a.rates, a.latency_rates, a.modes = 200_000, 2.0, "100e3,200e3", "100e3", "book"
        a.runs = 1
    prefix = os.path.join(a.dir, "live-%d-%d-%d" % (a.messages, a.symbols, a.seed))
    summary = benchlib.day(
        prefix, ["--messages", a.messages, "--symbols", a.symbols, "--seed", a.seed, "--channels", 2], need=[".pcap"]
    )
    day = {"pcap": prefix + ".pcap", "messages": summary["messages"]}
    out = {"machine": benchlib.machine(), "commit": benchlib.git_commit(), "day": day, "drivers": {}, **out_ring}

    drivers = a.drivers.split(",")
    missing = {d: driver_missing(d) for d in drivers}
    for d, why in missing.items():
        out["drivers"][d] = {"skipped": why, "sustained": [], "latency": []}
        if why:
            print("%s: not measured: %s" % (d, why))
    live = [d for d in drivers if not missing[d]]

    # Throughput: the day once through `replay` at full speed, and once through
    # each driver as fast as the handler takes it (the sender at --speed 0 with
    # back-pressure: a full ring holds it back instead of dropping), books only,
    # no latency stamps, handler pinned to the same core; rounds alternate.  One
    # pass only: a repeated pass is all duplicates, cheaper than new messages.
    ref_runs = []
    sat = {d: [] for d in live}
    for k in range(a.runs):
        ref_runs.append(benchlib.replay(day["pcap"], "--mode", "book", cpu=a.cpu_run, timeout=900)["msgs_per_s"])
        for d in live:
            try:
                sat[d].append(
                    live_run(a, day, d, 0, 0, "book", tag="t%d" % k, latency=False, tx_wait_us=1_000_000, loop=1)
                )
            except benchlib.BenchError as exc:
                print("%s throughput: %s" % (d, exc))
    ref = {"msgs_per_s": benchlib.median(ref_runs)}
    out["replay_msgs_per_s"] = ref["msgs_per_s"]
    out["replay_runs"] = ref_runs
    print("replay, full speed, books: %.2f M msgs/s (median of %d)" % (ref["msgs_per_s"] / 1e6, len(ref_runs)))
    for d in live:
        runs = sat[d]
        if not runs:
            continue
        rate = benchlib.median([r["sent_msgs_per_s"] for r in runs])
        res = out["drivers"][d]
        res["throughput"] = runs
        res["throughput_msgs_per_s"] = rate
        res["throughput_vs_replay"] = rate / ref["msgs_per_s"]
        res["throughput_lossless"] = all(r["lossless"] for r in runs)
        print(
            "%s as fast as the handler takes it (back-pressure), books: %.2f M msgs/s = %.2fx replay; %s"
            % (
                d,
                rate / 1e6,
                rate / ref["msgs_per_s"],
                "nothing lost"
                if res["throughput_lossless"]
                else "LOST frames %s (messages %s)"
                % ([r["frames_lost"] for r in runs], [r["messages_lost"] for r in runs]),
            )
        )

    for driver in live:
        res = out["drivers"][driver]
        best = None
        for i, rate in enumerate(float(r) for r in a.rates.split(",")):
            try:
                r = live_run(a, day, driver, rate, a.seconds, "book", tag="s%d" % i)
            except benchlib.BenchError as exc:
                res["error"] = str(exc)
                print("%s: %s" % (driver, exc))
                break
            res["sustained"].append(r)
            print(
                "%s %5.2f M msgs/s for %gs: sent %.2f M msgs/s, lost %d frames (%d messages), imissed %d, "
                "rx_nombuf %d, gaps %d, tx drops %d: %s"
                % (
                    driver,
                    rate / 1e6,
                    a.seconds,
                    r["sent_msgs_per_s"] / 1e6,
                    r["frames_lost"],
                    r["messages_lost"],
                    r["imissed"],
                    r["rx_nombuf"],
                    r["gaps"],
                    r["tx_dropped"],
                    "OK" if r["lossless"] else "LOSS",
                )
            )
            if not r["lossless"]:
                break
            best = rate
        res["highest_lossless_msgs_per_s"] = best
        res["vs_replay"] = best / ref["msgs_per_s"] if best else None
        lat_rates = [float(r) for r in a.latency_rates.split(",")]
        runs = [(r, None) for r in lat_rates] + [(lat_rates[0], a.burst)]
        for mode in a.modes.split(","):
            for j, (rate, burst) in enumerate(runs):
                try:
                    r = live_run(a, day, driver, rate, 0, mode, burst=burst, tag="l%d%s" % (j, mode[0]))
                except benchlib.BenchError as exc:
                    print("%s latency at %g: %s" % (driver, rate, exc))
                    continue
                res["latency"].append(r)
                w = r["latency"].get("wire_to_published")
                print(
                    "%s %-7s %5.2f M msgs/s%s: wire->published %s, wire->rx %s, lost %d"
                    % (
                        driver,
                        mode,
                        rate / 1e6,
                        " burst " + burst if burst else "",
                        " / ".join(fmt_ns(w[p]) for p in PCTS) if w else "-",
                        fmt_ns(r["latency"]["wire_to_rx"]["p50"]) if "wire_to_rx" in r["latency"] else "-",
                        r["frames_lost"],
                    )
                )

    # The pcap PMD on the same file, no sender: its own full-speed rate.
    eal = "-l %d --no-huge --no-pci -m 512 --file-prefix fhb-pcap-%d --log-level=error --vdev=net_pcap0,rx_pcap=%s" % (
        a.cpu_run,
        os.getpid(),
        day["pcap"],
    )
    st = benchlib.stats_json(benchlib.fh("run", "--dpdk", eal, "--mode", "book"), timeout=900)
    out["pcap_pmd_msgs_per_s"] = st["msgs_per_s"]
    print(
        "pcap PMD, full speed, books: %.2f M msgs/s (%.2fx replay)"
        % (st["msgs_per_s"] / 1e6, st["msgs_per_s"] / ref["msgs_per_s"])
    )
    # The floor the machine itself puts under any latency: gaps a thread spinning
    # on the handler's core sees (scripts/bench_latency.py's probe).
    from bench_latency import hiccups

    out["jitter"] = hiccups(a.cpu_run, a.jitter_s) if a.jitter_s > 0 else None
    if out["jitter"]:
        j = out["jitter"]
        print(
            "machine jitter on core %d over %.0f s: %d gaps > 1 us, %d > 10 us"
            % (a.cpu_run, j["seconds"], j["gaps_over_1us"], j["gaps_over_10us"])
        )
    if a.png:
        plot(out, a.png)
    benchlib.write_json(a.json, out)


def plot(out, path):
    """wire -> published, one line per run (the tail to the right, log axes),
    and the machine's own jitter floor when it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.get_cmap("tab20").colors
    k = 0
    for driver, res in out["drivers"].items():
        style = "-" if driver.startswith("memif") else "--"
        for r in res.get("latency", []):
            d = r.get("distribution")
            if not d:
                continue
            xs = [100 - p[0] for p in d if p[0] < 100]
            ys = [max(p[1], 1) / 1e3 for p in d if p[0] < 100]
            label = "%s %s %gM%s" % (driver, r["mode"], r["rate"] / 1e6, " 10x bursts" if r["burst"] else "")
            ax.plot(xs, ys, style, color=colours[k % len(colours)], label=label)
            k += 1
    j = out.get("jitter")
    if j:
        # What the machine alone puts under a packet due at a random instant
        # (bench_latency.py's probe on the handler's core): no driver beats it.
        ax.plot(
            [1.0, 0.1],
            [max(j["floor_p99"], 1) / 1e3, max(j["floor_p99_9"], 1) / 1e3],
            "k-o",
            linewidth=2,
            label="machine jitter floor (p99, p99.9)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("percent of packets slower (log)")
    ax.set_ylabel("wire -> published (us, log)")
    ax.set_title("feedhandler send -> driver -> feedhandler run, one host (%s)" % out["machine"].get("cpu", ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
