#!/usr/bin/env python3
"""The whole data path under load, measured the way DPDK users measure it.

dpdk-testpmd is the traffic generator: it replays a PTP capture without end
(net_pcap, infinite_rx=1) into a memif link to the device under test and
counts what comes back on a second memif link (chained topology: pcap ->
memif A -> DUT -> memif B -> testpmd). The device under test is either
testpmd itself in io forwarding mode (the baseline of the link) or
ptpsec-dataplane with its inside port on memif A and its outside port on
memif B, in one of three modes: pass-through, sign (every algorithm) and
verify and strip (every algorithm, on a capture signed with that algorithm).

Each run offers as much as the generator can send. The DUT does not drop
what it cannot send at once: when its TX queue towards the generator takes
only part of a burst it retries, --tx-retry N times 1 us apart
(ptpsec-dataplane's --tx-retry; testpmd's own "set fwd io retry" with the
same count and delay for the io baseline, so both DUTs work under the same
rule), and memif pushes the backlog back into the generator, whose TX to
memif A fails and counts TX-dropped. N x 1 us is how long the DUT waits for
a stalled generator to drain memif B: longer stalls still lose frames. What the DUT took
and did not forward is its loss: for ptpsec-dataplane rx - tx - policy drops
(and its drop counters, tx_full included) from --stats-json, for testpmd its
forward statistics at exit. A run counts only at zero loss; a cell with a
lossy run is marked so, never hidden.

The rate of a run is the frames per second that came back to the generator:
the median of its per-second statistics (--stats-period 1) once warmed up.
The DUT runs on its own CPU (one worker lcore); the generator on the other.
(On a VM testpmd now and then prints after two seconds instead of one; its
Rx-pps still covers the time since the previous print, so a run lasts
warm-up + measure prints, not seconds.)

Every repetition (--reps) measures testpmd io, pass-through, and sign and
verify for each algorithm, in that order, so the io baseline is measured
again in every repetition and each run's ratio is to the io rate of its own
repetition. A cell reports the median over the repetitions, their range, and
the median of the ratios (the number to hold against a target).

Ends with one line per algorithm (medians):
    ALG io IO_MPPS sign SIGN_MPPS verify VERIFY_MPPS
and writes the results as JSON (--json) for scripts/bench-report.py.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ALGORITHMS = [
    # name, SA file key type, key
    ("hmac-sha256-128", "SHA256-128 32", "HEX:" + "11" * 32),
    ("hmac-sha256", "SHA256 32", "HEX:" + "22" * 32),
    ("aes-cmac-128", "AES128", "HEX:" + "33" * 16),
    ("aes-cmac-256", "AES256", "HEX:" + "44" * 32),
    ("aes-gmac-128", "AES128-GMAC", "HEX:" + "55" * 16),
    ("aes-gmac-192", "AES192-GMAC", "HEX:" + "66" * 24),
    ("aes-gmac-256", "AES256-GMAC", "HEX:" + "77" * 32),
]

WARMUP_S = 2
MEASURE_S = 4
# The pause between two TX retries of testpmd io (its default, BURST_TX_WAIT_US).
TX_RETRY_DELAY_US = 1
# The DUT, a memif server, starts first: the generator connects once the DUT
# has printed its ready line (its ports are started), or after this long.
SERVER_START_S = 2
# A run whose per-second samples spread by more than this (max - min over the
# median) is flagged: the memif link on a small VM flips between rates.
UNSTABLE_SPREAD = 0.2
JSON_FORMAT = 2
# ptpsec-dataplane's drop reasons that are not decisions about the frame.
CAPACITY_DROPS = ("tx_full", "handoff_full")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class RunFailed(Exception):
    """A process of a run exited before it was told to: an option it does not
    know, a port that did not come up, hugepages that ran out, a crash."""

    def __init__(self, who, tag, log_text):
        self.log_text = log_text
        tail = "\n".join(log_text.strip().splitlines()[-8:])
        super().__init__(f"the {who} of run {tag} exited early:\n{tail}")


class Procs:
    """Processes of one run, stopped by PID in the order memif wants: the
    server (DUT) first, then the client (generator)."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, log):
        f = open(log, "w")
        try:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError:
            f.close()
            raise
        self.procs.append((p, f))
        return p

    def stop_all(self):
        procs, self.procs = self.procs, []
        self._stop(procs)

    def _stop(self, procs):
        """Stops procs[0], then the rest even if that was interrupted."""
        if not procs:
            return
        p, f = procs[0]
        try:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                except BaseException:
                    p.kill()
                    p.wait()
                    raise
        finally:
            f.close()
            self._stop(procs[1:])


def eal(lcores, prefix, vdevs):
    args = ["--lcores", lcores, "--no-pci", "--huge-unlink", "-m", "256", "--file-prefix", prefix]
    for v in vdevs:
        args += ["--vdev", v]
    return args


def gen_prefix():
    return f"ptpsec-gen-{os.getpid()}"


def dut_prefix():
    return f"ptpsec-dut-{os.getpid()}"


def generator_cmd(traffic, sock_a, sock_b):
    return (["dpdk-testpmd"]
            + eal("0@0,1@0", gen_prefix(), [
                f"net_pcap0,rx_pcap={traffic},infinite_rx=1,tx_pcap=/dev/null",
                f"net_memif0,role=client,socket={sock_a},id=0",
                f"net_memif1,role=client,socket={sock_b},id=0"])
            + ["--", "--port-topology=chained", "--forward-mode=io", "--auto-start", "--stats-period", "1",
               "--total-num-mbufs=16384"])


def returned_rates(text):
    """Rx-pps of port 2 (what came back), one per second since the start."""
    rates = []
    for b in re.findall(r"NIC statistics for port 2\s+#+\s+(.*?)#####", text, re.S):
        m = re.search(r"Rx-pps:\s+(\d+)", b)
        if m:
            rates.append(int(m.group(1)))
    return rates


def forward_stats(text):
    """testpmd's forward statistics at exit: {port or "all": {rx, rx_dropped,
    tx, tx_dropped}}, the last ones printed. TX-dropped counts what the
    forwarding engine received and could not send."""
    found = {}
    blocks = [(m.group(1), m.group(2)) for m in
              re.finditer(r"-+ Forward statistics for port\s+(\d+)\s+-+\n(.*?)\n\s*-{20,}", text, re.S)]
    blocks += [("all", m.group(1)) for m in
               re.finditer(r"\++ Accumulated forward statistics for all ports\s*\++\n(.*?)\n\s*\+{20,}", text, re.S)]
    for port, body in blocks:
        stats = {}
        for key, field in (("rx", "RX-packets"), ("rx_dropped", "RX-dropped"), ("tx", "TX-packets"),
                           ("tx_dropped", "TX-dropped")):
            m = re.search(rf"{field}:\s+(\d+)", body)
            if m:
                stats[key] = int(m.group(1))
        found[port if port == "all" else int(port)] = stats
    return found


class TestpmdIo:
    """testpmd io forwarding as the DUT: the baseline of the link. With
    retries, testpmd's "set fwd io retry" retries a partly sent burst
    burst_tx_retry_num times, burst_tx_delay_time us apart (app/test-pmd
    iofwd.c); testpmd has no command-line option for it, so it is set from a
    --cmdline-file run before forwarding starts."""

    ready_line = "forwards packets on"  # printed as forwarding starts

    def __init__(self, work, tx_retry):
        self.tx_retry = tx_retry
        self.cmdline_file = None
        if tx_retry > 0:
            self.cmdline_file = os.path.join(work, "testpmd-io.cmds")
            with open(self.cmdline_file, "w") as f:
                f.write(self.commands())

    def commands(self):
        return f"set fwd io retry\nset burst tx delay {TX_RETRY_DELAY_US} retry {self.tx_retry}\n"

    def cmd(self, sock_a, sock_b):
        args = (["dpdk-testpmd"]
                + eal("0@1,1@1", dut_prefix(), [
                    f"net_memif0,role=server,socket={sock_a},id=0",
                    f"net_memif1,role=server,socket={sock_b},id=0"])
                # --stats-period keeps it running until SIGINT (without it,
                # testpmd waits for Enter on stdin).
                + ["--", "--forward-mode=io", "--auto-start", "--stats-period", "1", "--total-num-mbufs=16384"])
        if self.cmdline_file:
            args.append(f"--cmdline-file={self.cmdline_file}")
        return args

    def prepare(self):
        pass

    def loss(self, log_text):
        acc = forward_stats(log_text).get("all")
        if not acc or "rx" not in acc or "tx" not in acc:
            return {"lost": None, "dropped": None, "note": "no forward statistics in testpmd's log"}
        dropped = acc.get("tx_dropped", 0)
        return {"rx": acc["rx"], "tx": acc["tx"], "dropped": dropped,
                "drops": {"tx_dropped": dropped} if dropped else {}, "lost": acc["rx"] - acc["tx"]}

    @staticmethod
    def retry_in_effect(log_text):
        """What testpmd says it does ("TX retry num: 64, delay between TX
        retries: 1us"), or None if it does not retry."""
        m = re.search(r"TX retry num:\s*(\d+), delay between TX retries:\s*(\d+)\s*us", log_text)
        return {"retries": int(m.group(1)), "delay_us": int(m.group(2))} if m else None


class Dataplane:
    """ptpsec-dataplane as the DUT; its counters at exit go to --stats-json."""

    ready_line = "SA updates on"  # the last line of its banner, printed once the ports are started

    def __init__(self, exe, sa_file, stats_path, extra, settings):
        self.exe = exe
        self.sa_file = sa_file
        self.stats_path = stats_path
        self.extra = extra
        self.settings = settings  # the --tx-retry in use, shared by every run

    def cmd(self, sock_a, sock_b):
        retry = ["--tx-retry", str(self.settings.dataplane_tx_retry)] if self.settings.dataplane_tx_retry > 0 else []
        return ([self.exe]
                + eal("1@1", dut_prefix(), [
                    f"net_memif0,role=server,socket={sock_a},id=0",
                    f"net_memif1,role=server,socket={sock_b},id=0"])
                + ["--", "--sa-file", self.sa_file, "--replay-window", "0", "--stats-json", self.stats_path]
                + retry + self.extra)

    def prepare(self):
        # A stale file must not stand in for a run that wrote none.
        if os.path.exists(self.stats_path):
            os.unlink(self.stats_path)

    def loss(self, log_text):
        try:
            with open(self.stats_path) as f:
                paths = json.load(f)["paths"]
        except (OSError, ValueError, KeyError):
            return {"lost": None, "dropped": None, "note": "ptpsec-dataplane wrote no --stats-json"}
        rx = sum(p.get("rx", 0) for p in paths)
        tx = sum(p.get("tx", 0) for p in paths)
        dropped = sum(p.get("dropped", 0) for p in paths)
        drops = {}
        for p in paths:
            for reason, n in p.get("drops", {}).items():
                drops[reason] = drops.get(reason, 0) + n
        # Policy drops (bad_icv, no_sa, ...) are decisions; what is left of
        # rx - tx was lost for want of room (a full TX queue or handoff
        # ring) or not counted at all.
        policy_drops = dropped - sum(drops.get(r, 0) for r in CAPACITY_DROPS)
        return {"rx": rx, "tx": tx, "dropped": dropped, "drops": drops, "lost": rx - tx - policy_drops}


def unknown_option(log_text, option):
    """Whether the program refused `option` as unknown (CLI11: "The following
    arguments were not expected: 64 --tx-retry")."""
    return any(option in line and "not expected" in line for line in log_text.splitlines())


class Settings:
    """What every ptpsec-dataplane run of this bench passes: --tx-retry, set
    to 0 once the binary refuses the option."""

    def __init__(self, tx_retry):
        self.dataplane_tx_retry = tx_retry
        self.dataplane_note = ""


def run_once(work, dut, traffic, tag, warmup, measure, keep_logs=None):
    """One run: the DUT, then the generator until it has printed warmup +
    measure seconds of statistics. Returns the rate and the DUT's loss; with
    keep_logs, copies both logs into that folder."""
    sock_a = os.path.join(work, f"{tag}-a.sock")
    sock_b = os.path.join(work, f"{tag}-b.sock")
    dut_log = os.path.join(work, f"{tag}-dut.log")
    gen_log = os.path.join(work, f"{tag}-gen.log")
    dut.prepare()
    procs = Procs()
    try:
        dut_proc = procs.start(dut.cmd(sock_a, sock_b), dut_log)
        # memif: the server first.
        ready_by = time.monotonic() + SERVER_START_S
        while (dut.ready_line not in read_text(dut_log) and dut_proc.poll() is None
               and time.monotonic() < ready_by):
            time.sleep(0.05)
        if dut_proc.poll() is not None:
            raise RunFailed("device under test", tag, read_text(dut_log))
        gen_proc = procs.start(generator_cmd(traffic, sock_a, sock_b), gen_log)
        deadline = time.monotonic() + warmup + measure + 15
        while len(returned_rates(read_text(gen_log))) < warmup + measure and time.monotonic() < deadline:
            if gen_proc.poll() is not None:
                raise RunFailed("generator", tag, read_text(gen_log))
            time.sleep(0.25)
        if dut_proc.poll() is not None:
            raise RunFailed("device under test", tag, read_text(dut_log))
    finally:
        procs.stop_all()
        for prefix in (gen_prefix(), dut_prefix()):
            shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
        # memif's sockets are abstract (socket-abstract=yes, the default):
        # they leave with the processes. Files only if someone changed that.
        for s in (sock_a, sock_b):
            if os.path.exists(s):
                os.unlink(s)
        if keep_logs:
            for log in (dut_log, gen_log):
                if os.path.exists(log):
                    shutil.copy(log, keep_logs)
    # The seconds after the warm-up and before the DUT was stopped.
    samples = returned_rates(read_text(gen_log))[warmup:warmup + measure]
    pps = statistics.median(samples) if samples else 0
    dut_text = read_text(dut_log)
    run = {"pps": pps, "samples": samples,
           "spread": round((max(samples) - min(samples)) / pps, 3) if pps else None}
    run["unstable"] = run["spread"] is None or run["spread"] > UNSTABLE_SPREAD
    run.update(dut.loss(dut_text))
    run["zero_loss"] = run["lost"] == 0 and run["dropped"] == 0
    gen = forward_stats(read_text(gen_log))
    # Frames the generator could not push into memif A: the backpressure.
    run["generator_tx_dropped"] = gen.get(1, {}).get("tx_dropped")
    if isinstance(dut, TestpmdIo):
        run["testpmd_retry"] = TestpmdIo.retry_in_effect(dut_text)
    return run


def summarize(runs, with_ratio=True):
    pps = [r["pps"] for r in runs]
    cell = {"runs": runs, "median_pps": statistics.median(pps), "min_pps": min(pps), "max_pps": max(pps),
            "zero_loss": all(r["zero_loss"] for r in runs),
            "lost": None if any(r["lost"] is None for r in runs) else sum(r["lost"] for r in runs),
            "dropped": None if any(r["dropped"] is None for r in runs) else sum(r["dropped"] for r in runs),
            "lossy_runs": sum(1 for r in runs if not r["zero_loss"]),
            "unstable_runs": sum(1 for r in runs if r["unstable"])}
    if with_ratio:
        ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
        cell.update({"median_ratio": statistics.median(ratios) if ratios else None,
                     "min_ratio": min(ratios) if ratios else None,
                     "max_ratio": max(ratios) if ratios else None})
    return cell


def loss_txt(run_or_cell):
    if run_or_cell["zero_loss"]:
        return "zero loss"
    lost, dropped = run_or_cell["lost"], run_or_cell["dropped"]
    if lost is None or dropped is None:
        return "NOT ZERO-LOSS (no DUT counters)"
    runs = (f" in {run_or_cell['lossy_runs']} of {len(run_or_cell['runs'])} runs"
            if "lossy_runs" in run_or_cell else "")
    return f"NOT ZERO-LOSS (lost {lost}, dropped {dropped}{runs})"


def pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--capture", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                      "testdata", "linuxptp", "l2-hmac-sha256-128.pcap"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--algorithms", default=",".join(a[0] for a in ALGORITHMS))
    ap.add_argument("--reps", type=int, default=3, help="repetitions, each with its own io baseline (default 3)")
    # 10,000 x 1 us: the generator, which shares its CPU with the capture
    # replay, stalls for longer than 64 us many times a second here, and
    # even testpmd io loses frames then; 10 ms covers its stalls.
    ap.add_argument("--tx-retry", type=int, default=10000,
                    help="TX retries of a partly sent burst in the DUT, 1 us apart: ptpsec-dataplane's "
                         "--tx-retry and testpmd's 'set fwd io retry' (0: none, a full TX queue drops; "
                         "default 10000)")
    ap.add_argument("--warmup", type=int, default=WARMUP_S,
                    help=f"per-second statistics of the generator not counted, the first reads 0 (default {WARMUP_S})")
    ap.add_argument("--measure", type=int, default=MEASURE_S,
                    help=f"per-second statistics counted (default {MEASURE_S})")
    ap.add_argument("--logs", metavar="DIR", help="keep the generator's and the DUT's log of every run in DIR")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("testpmd_bench: needs root (hugepages, memif sockets)")
    if args.reps < 1 or args.measure < 1 or args.warmup < 0 or args.tx_retry < 0:
        sys.exit("testpmd_bench: --reps and --measure must be at least 1, --warmup and --tx-retry at least 0")
    dataplane = os.path.join(args.build, "dataplane", "app", "ptpsec-dataplane")
    ctl = os.path.join(args.build, "control", "ptpsecctl")
    for exe in (dataplane, ctl):
        if not os.access(exe, os.X_OK):
            sys.exit(f"testpmd_bench: {exe} not built")
    if args.logs:
        os.makedirs(args.logs, exist_ok=True)
    if shutil.which("dpdk-testpmd") is None:
        sys.exit("testpmd_bench: dpdk-testpmd not found (Debian package dpdk)")
    known = [a[0] for a in ALGORITHMS]
    wanted = [a for a in args.algorithms.split(",") if a]
    unknown = [a for a in wanted if a not in known]
    if unknown:
        sys.exit(f"testpmd_bench: unknown algorithm {', '.join(unknown)} (known: {', '.join(known)})")
    algorithms = [(i, name) for i, (name, _, _) in enumerate(ALGORITHMS, start=1) if name in wanted]

    # SIGTERM (a killed make, a timeout) unwinds like Ctrl-C, so the finally
    # blocks stop the processes and remove the sockets and folders.
    def terminate(signum, _frame):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # once is enough: let the cleanup finish
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="ptpsec-testpmd-")
    try:
        results = run_bench(args, work, dataplane, ctl, algorithms)
    except RunFailed as e:
        sys.exit(f"testpmd_bench: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"testpmd_bench: results in {args.json}")
    print_summary(results, time.monotonic() - started)


def run_bench(args, work, dataplane, ctl, algorithms):
    sa_file = os.path.join(work, "sa.conf")
    with open(sa_file, "w") as f:
        f.write("[security_association]\nspp 2\n")
        for i, (_, kind, key) in enumerate(ALGORITHMS, start=1):
            f.write(f"{i} {kind} {key}\n")
    stripped = os.path.join(work, "stripped.pcap")
    sh([ctl, "pcap", "strip", args.capture, stripped])
    signed = {}
    for i, name in algorithms:
        signed[name] = os.path.join(work, f"signed-{name}.pcap")
        sh([ctl, "pcap", "sign", "--sa-file", sa_file, "--spp", "2", "--key-id", str(i), stripped, signed[name]])

    settings = Settings(args.tx_retry)
    stats_path = os.path.join(work, "dut-stats.json")
    io_dut = TestpmdIo(work, args.tx_retry)

    def dp(extra):
        return Dataplane(dataplane, sa_file, stats_path, extra, settings)

    pass_dut = dp(["--inside-policy", "pass", "--outside-policy", "pass"])
    sign_duts = {name: dp(["--sign", f"2:{i}"]) for i, name in algorithms}
    # The signed capture enters on the inside port here; verify it there by
    # giving the inside direction the verify policy's mirror: outside port
    # first (memif A carries the traffic in).
    verify_duts = {name: dp(["--inside", "1", "--outside", "0", "--inside-policy", "pass",
                             "--outside-policy", "verify-strip"]) for _, name in algorithms}

    def measure(dut, traffic, tag):
        try:
            return run_once(work, dut, traffic, tag, args.warmup, args.measure, args.logs)
        except RunFailed as e:
            if not (isinstance(dut, Dataplane) and settings.dataplane_tx_retry > 0
                    and unknown_option(e.log_text, "--tx-retry")):
                raise
        settings.dataplane_tx_retry = 0
        settings.dataplane_note = ("this ptpsec-dataplane does not know --tx-retry: measured without retry, a "
                                   "full TX queue drops")
        print(f"testpmd_bench: {settings.dataplane_note}", flush=True)
        return run_once(work, dut, traffic, tag, args.warmup, args.measure, args.logs)

    cells = {"io": [], "pass": []}
    for _, name in algorithms:
        cells[f"sign {name}"] = []
        cells[f"verify {name}"] = []

    def record(key, rep, run, io_pps):
        run["rep"] = rep
        run["ratio"] = run["pps"] / io_pps if io_pps and key != "io" else None
        cells[key].append(run)
        ratio = f" ({pct(run['ratio'])} of io)" if run["ratio"] is not None else ""
        flag = f", per-second spread {pct(run['spread'])} UNSTABLE" if run["unstable"] else ""
        print(f"  rep {rep}/{args.reps} {key}: {run['pps'] / 1e6:.2f} Mpps{ratio}, {loss_txt(run)}{flag}",
              flush=True)

    for rep in range(1, args.reps + 1):
        io = measure(io_dut, stripped, f"r{rep}-io")
        record("io", rep, io, io["pps"])
        record("pass", rep, measure(pass_dut, stripped, f"r{rep}-pass"), io["pps"])
        for _, name in algorithms:
            record(f"sign {name}", rep, measure(sign_duts[name], stripped, f"r{rep}-sign-{name}"), io["pps"])
            record(f"verify {name}", rep, measure(verify_duts[name], signed[name], f"r{rep}-verify-{name}"),
                   io["pps"])

    confirmed = [r.get("testpmd_retry") for r in cells["io"]]
    return {
        "format": JSON_FORMAT,
        "generator": "dpdk-testpmd io, net_pcap infinite_rx -> memif",
        "cpu": cpu_name(),
        "warmup_s": args.warmup,
        "measure_s": args.measure,
        "reps": args.reps,
        "unstable_spread": UNSTABLE_SPREAD,
        "tx_retry": {
            "requested": args.tx_retry,
            "dataplane": settings.dataplane_tx_retry,
            "dataplane_note": settings.dataplane_note,
            "testpmd_io": io_dut.commands().strip().replace("\n", "; ") if args.tx_retry > 0 else "off",
            # As testpmd printed it when forwarding started, per repetition.
            "testpmd_io_in_effect": confirmed,
        },
        "io": summarize(cells["io"], with_ratio=False),
        "pass": summarize(cells["pass"]),
        "algorithms": {name: {"sign": summarize(cells[f"sign {name}"]),
                              "verify": summarize(cells[f"verify {name}"])} for _, name in algorithms},
    }


def print_summary(results, elapsed):
    retry = results["tx_retry"]
    note = f" ({retry['dataplane_note']})" if retry["dataplane_note"] else ""
    print(f"\n{results['reps']} repetition(s) in {elapsed:.0f} s; TX retry: ptpsec-dataplane --tx-retry "
          f"{retry['dataplane']}{note}, testpmd io: {retry['testpmd_io']}")
    rows = [("io", results["io"]), ("pass", results["pass"])]
    for name, a in results["algorithms"].items():
        rows += [(f"sign {name}", a["sign"]), (f"verify {name}", a["verify"])]
    print(f"{'cell':<24} {'Mpps':>6} {'range':>11} {'/io':>5} {'/io range':>10}  loss")
    for key, c in rows:
        rng = f"{c['min_pps'] / 1e6:.2f}-{c['max_pps'] / 1e6:.2f}"
        ratio_rng = (f"{pct(c['min_ratio'])}-{pct(c['max_ratio'])}" if c.get("median_ratio") is not None else "-")
        unstable = f", {c['unstable_runs']} unstable run(s)" if c["unstable_runs"] else ""
        print(f"{key:<24} {c['median_pps'] / 1e6:>6.2f} {rng:>11} {pct(c.get('median_ratio')):>5} "
              f"{ratio_rng:>10}  {loss_txt(c)}{unstable}")
    print()
    io = results["io"]["median_pps"]
    for name, a in results["algorithms"].items():
        print(f"{name} io {io / 1e6:.2f} sign {a['sign']['median_pps'] / 1e6:.2f} "
              f"verify {a['verify']['median_pps'] / 1e6:.2f}")


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
