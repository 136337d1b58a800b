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

Each run offers as much as the generator can send; what the DUT cannot take
stays in the generator (its memif TX fails and testpmd counts TX-dropped).
A rate counts only if the DUT lost nothing it took: ptpsec-dataplane's own
drop counters (tx_full included) must stay at zero. The rate is the frames
per second that came back to the generator, the median of its per-second
statistics once warmed up. The DUT runs on its own CPU (one worker lcore);
the generator on the other.

Ends with one line per algorithm:
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


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Procs:
    """Processes of one run, stopped by PID in the order memif wants: the
    server (DUT) first, then the client (generator)."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, log):
        f = open(log, "w")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((p, f))
        return p

    def stop_all(self):
        for p, f in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            f.close()
        self.procs = []


def eal(lcores, prefix, vdevs):
    args = ["--lcores", lcores, "--no-pci", "--huge-unlink", "-m", "256", "--file-prefix", prefix]
    for v in vdevs:
        args += ["--vdev", v]
    return args


def generator_cmd(traffic, sock_a, sock_b, prefix):
    return (["dpdk-testpmd"]
            + eal("0@0,1@0", prefix, [
                f"net_pcap0,rx_pcap={traffic},infinite_rx=1,tx_pcap=/dev/null",
                f"net_memif0,role=client,socket={sock_a},id=0",
                f"net_memif1,role=client,socket={sock_b},id=0"])
            + ["--", "--port-topology=chained", "--forward-mode=io", "--auto-start", "--stats-period", "1",
               "--total-num-mbufs=16384"])


def returned_pps(log):
    """Median Rx-pps of port 2 (what came back), after the warm-up."""
    text = open(log).read()
    blocks = re.findall(r"NIC statistics for port 2\s+#+\s+(.*?)#####", text, re.S)
    rates = []
    for b in blocks:
        m = re.search(r"Rx-pps:\s+(\d+)", b)
        if m:
            rates.append(int(m.group(1)))
    rates = rates[WARMUP_S:]
    return statistics.median(rates) if rates else 0


def run_once(work, dut_cmd, traffic, tag):
    sock_a = os.path.join(work, f"{tag}-a.sock")
    sock_b = os.path.join(work, f"{tag}-b.sock")
    for s in (sock_a, sock_b):
        if os.path.exists(s):
            os.unlink(s)
    procs = Procs()
    try:
        procs.start(dut_cmd(sock_a, sock_b), os.path.join(work, f"{tag}-dut.log"))
        time.sleep(2)  # memif: the server first
        gen_log = os.path.join(work, f"{tag}-gen.log")
        procs.start(generator_cmd(traffic, sock_a, sock_b, f"ptpsec-gen-{os.getpid()}"), gen_log)
        time.sleep(WARMUP_S + MEASURE_S + 1)
    finally:
        procs.stop_all()
        for prefix in (f"ptpsec-gen-{os.getpid()}", f"ptpsec-dut-{os.getpid()}"):
            shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    return returned_pps(gen_log)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--capture", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                      "testdata", "linuxptp", "l2-hmac-sha256-128.pcap"))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--algorithms", default=",".join(a[0] for a in ALGORITHMS))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("testpmd_bench: needs root (hugepages, memif sockets)")
    dataplane = os.path.join(args.build, "dataplane", "app", "ptpsec-dataplane")
    ctl = os.path.join(args.build, "control", "ptpsecctl")
    for exe in (dataplane, ctl):
        if not os.access(exe, os.X_OK):
            sys.exit(f"testpmd_bench: {exe} not built")
    if shutil.which("dpdk-testpmd") is None:
        sys.exit("testpmd_bench: dpdk-testpmd not found (Debian package dpdk)")
    wanted = args.algorithms.split(",")

    work = tempfile.mkdtemp(prefix="ptpsec-testpmd-")
    try:
        sa_file = os.path.join(work, "sa.conf")
        with open(sa_file, "w") as f:
            f.write("[security_association]\nspp 2\n")
            for i, (_, kind, key) in enumerate(ALGORITHMS, start=1):
                f.write(f"{i} {kind} {key}\n")
        stripped = os.path.join(work, "stripped.pcap")
        sh([ctl, "pcap", "strip", args.capture, stripped])

        def dut_dataplane(extra):
            def cmd(sock_a, sock_b):
                return ([dataplane]
                        + eal("1@1", f"ptpsec-dut-{os.getpid()}", [
                            f"net_memif0,role=server,socket={sock_a},id=0",
                            f"net_memif1,role=server,socket={sock_b},id=0"])
                        + ["--", "--sa-file", sa_file, "--replay-window", "0", "--stats-json",
                           os.path.join(work, "dut-stats.json")] + extra)
            return cmd

        def dut_io(sock_a, sock_b):
            return (["dpdk-testpmd"]
                    + eal("0@1,1@1", f"ptpsec-dut-{os.getpid()}", [
                        f"net_memif0,role=server,socket={sock_a},id=0",
                        f"net_memif1,role=server,socket={sock_b},id=0"])
                    # --stats-period keeps it running until SIGINT (without it,
                    # testpmd waits for Enter on stdin).
                    + ["--", "--forward-mode=io", "--auto-start", "--stats-period", "1",
                       "--total-num-mbufs=16384"])

        def dut_drops():
            with open(os.path.join(work, "dut-stats.json")) as f:
                paths = json.load(f)["paths"]
            return sum(p["dropped"] for p in paths)

        results = {"generator": "dpdk-testpmd io, net_pcap infinite_rx -> memif", "cpu": cpu_name(),
                   "warmup_s": WARMUP_S, "measure_s": MEASURE_S, "algorithms": {}}
        io = run_once(work, dut_io, stripped, "io")
        results["io_pps"] = io
        passthrough = run_once(work, dut_dataplane(["--inside-policy", "pass", "--outside-policy", "pass"]),
                               stripped, "pass")
        results["pass_pps"] = passthrough
        results["pass_dropped"] = dut_drops()
        print(f"io {io / 1e6:.2f} Mpps; ptpsec-dataplane pass-through {passthrough / 1e6:.2f} Mpps "
              f"(dropped {results['pass_dropped']})", flush=True)
        lines = []
        for i, (name, _, _) in enumerate(ALGORITHMS, start=1):
            if name not in wanted:
                continue
            sign = run_once(work, dut_dataplane(["--sign", f"2:{i}"]), stripped, f"sign-{name}")
            sign_dropped = dut_drops()
            signed = os.path.join(work, f"signed-{name}.pcap")
            sh([ctl, "pcap", "sign", "--sa-file", sa_file, "--spp", "2", "--key-id", str(i), stripped, signed])
            # The signed capture enters on the inside port here; verify it
            # there by giving the inside direction the verify policy's
            # mirror: outside port first (memif A carries the traffic in).
            verify = run_once(work, dut_dataplane(["--inside", "1", "--outside", "0", "--inside-policy", "pass",
                                                   "--outside-policy", "verify-strip"]), signed,
                              f"verify-{name}")
            verify_dropped = dut_drops()
            results["algorithms"][name] = {"sign_pps": sign, "sign_dropped": sign_dropped, "verify_pps": verify,
                                           "verify_dropped": verify_dropped}
            lines.append(f"{name} io {io / 1e6:.2f} sign {sign / 1e6:.2f} verify {verify / 1e6:.2f}")
            print(f"  {name}: sign {sign / 1e6:.2f} Mpps (dropped {sign_dropped}), verify+strip "
                  f"{verify / 1e6:.2f} Mpps (dropped {verify_dropped})", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        for line in lines:
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
