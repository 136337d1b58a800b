#!/usr/bin/env python3
"""How long an SA update takes to reach the workers, under load.

ptpsec-dataplane signs the stripped linuxptp capture, replayed without end
from a net_pcap port, onto a net_ring port that loops every frame back to be
verified (the rotation test's set-up). Meanwhile `ptpsecctl sa push` rotates
the signing key ROTATIONS times (add the next key, make it current, remove
the one before the last). Every update carries the CLOCK_MONOTONIC time it
was put on the ring; the data plane reports, at exit (--stats-json), the
time from then to the publication of the new SA version, after which each
worker reads it at its next burst. The same data plane also reports its
frame rate, from which the burst interval follows.

Four placements of the work that applies updates:
  one-lcore       -l 0: the only lcore polls, and looks at the SA ring
                  after every burst
  ptp-worker      -l 0-1 (the default, --sa-apply worker): a worker lcore
                  polls and applies updates between two of its bursts; the
                  main lcore sleeps, stepping in only for a held-up worker
  main-sleeps     -l 0-1 --sa-apply main: the main lcore applies them; it
                  sleeps up to --service-interval 200 us (the default)
                  between looks, and the writer's doorbell wakes it
  main-polls      -l 0-1 --sa-apply main --service-interval 0: the main
                  lcore polls the ring without sleeping (a core of its own)

Ends with one line per placement:
    PLACEMENT p50 P50_US p99 P99_US max MAX_US burst_interval BURST_US
and writes the results as JSON (--json).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PLACEMENTS = [
    ("one-lcore", "0", []),
    ("ptp-worker", "0-1", []),
    ("main-sleeps", "0-1", ["--sa-apply", "main"]),
    ("main-polls", "0-1", ["--sa-apply", "main", "--service-interval", "0"]),
]


def run_placement(build, work, stripped, name, lcores, extra, rotations, memory):
    dataplane = os.path.join(build, "dataplane", "app", "ptpsec-dataplane")
    ctl = os.path.join(build, "control", "ptpsecctl")
    prefix = f"ptpsec-sabench-{os.getpid()}-{name}"
    stats = os.path.join(work, f"{name}-stats.json")
    # Signing from the start with key 1000, so that nothing is dropped
    # while the control side gets going.
    first_sa = os.path.join(work, "first.conf")
    with open(first_sa, "w") as f:
        f.write(f"[security_association]\nspp 2\n1000 SHA256-128 32 HEX:{1000:064x}\n")
    log = open(os.path.join(work, f"{name}-dp.log"), "w")
    cmd = [dataplane, "--no-pci"] + memory + ["-l", lcores, "--file-prefix", prefix,
           "--vdev", f"net_pcap0,rx_pcap={stripped},infinite_rx=1,tx_pcap=/dev/null", "--vdev", "net_ring0",
           "--", "--sa-file", first_sa, "--sign", "2:1000", "--replay-window", "0", "--stats-json", stats] + extra
    dp = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not os.path.exists(f"/dev/shm/ptpsec-sa.{prefix}"):
            if dp.poll() is not None or time.time() > deadline:
                sys.exit(f"sa_update_bench: ptpsec-dataplane did not start; see {log.name}")
            time.sleep(0.05)
        started = time.time()
        for k in range(1, rotations + 1):
            sa = os.path.join(work, "key.conf")
            with open(sa, "w") as f:
                f.write(f"[security_association]\nspp 2\n{k} SHA256-128 32 HEX:{k:064x}\n")
            subprocess.run([ctl, "sa", "push", "--file-prefix", prefix, "--sa-file", sa, "--current", f"2:{k}"],
                           check=True, capture_output=True)
            if k > 2:
                subprocess.run([ctl, "sa", "remove", "--file-prefix", prefix, "--spp", "2", "--key-id", str(k - 2)],
                               check=True, capture_output=True)
    finally:
        took = time.time() - started if "started" in locals() else 0
        if dp.poll() is None:
            dp.send_signal(signal.SIGINT)
            try:
                dp.wait(timeout=20)
            except subprocess.TimeoutExpired:
                dp.kill()
                dp.wait()
        log.close()
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    with open(stats) as f:
        s = json.load(f)
    lat = s["sa_updates"]["apply_latency_us"]
    rx = sum(p["rx"] for p in s["paths"])
    dropped = sum(p["dropped"] for p in s["paths"])
    reasons = {}
    for p in s["paths"]:
        for k, v in p["drops"].items():
            reasons[k] = reasons.get(k, 0) + v
    fps = rx / took if took > 0 else 0
    # The signing path receives half of the frames; a burst is 32 of them.
    burst_us = 32 / (fps / 2) * 1e6 if fps > 0 else 0
    return {"lcores": lcores, "options": extra, "updates": s["sa_updates"]["applied"],
            "applied_by_worker": s["sa_updates"]["applied_by_worker"],
            "applied_by_main_for_worker": s["sa_updates"]["applied_by_main_for_worker"],
            "rejected": s["sa_updates"]["rejected"], "apply_latency_us": lat, "frames_per_s": fps,
            "burst_interval_us": burst_us, "dropped": dropped, "drops": reasons}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--capture", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                      "testdata", "linuxptp", "l2-hmac-sha256-128.pcap"))
    ap.add_argument("--rotations", type=int, default=200)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-huge", action="store_true", help="run the data plane without hugepages")
    args = ap.parse_args()
    memory = ["--no-huge", "-m", "256"] if args.no_huge else ["--huge-unlink", "-m", "256"]
    if os.geteuid() != 0:
        sys.exit("sa_update_bench: needs root (hugepages)")
    work = tempfile.mkdtemp(prefix="ptpsec-sabench-")
    try:
        ctl = os.path.join(args.build, "control", "ptpsecctl")
        stripped = os.path.join(work, "stripped.pcap")
        subprocess.run([ctl, "pcap", "strip", args.capture, stripped], check=True, capture_output=True)
        results = {"rotations": args.rotations, "placements": {}}
        lines = []
        for name, lcores, extra in PLACEMENTS:
            r = run_placement(args.build, work, stripped, name, lcores, extra, args.rotations, memory)
            results["placements"][name] = r
            lat = r["apply_latency_us"]
            lines.append(f"{name} p50 {lat['p50']} p99 {lat['p99']} max {lat['max']} "
                         f"burst_interval {r['burst_interval_us']:.1f}")
            by = (f", {r['applied_by_worker']} by the PTP worker, {r['applied_by_main_for_worker']} by the main "
                  f"lcore for it" if lcores != "0" and "main" not in extra else "")
            print(f"  {name}: {r['updates']} updates applied ({r['rejected']} rejected{by}), apply latency p50 "
                  f"{lat['p50']} us p99 {lat['p99']} us max {lat['max']} us; {r['frames_per_s'] / 1e6:.2f} Mfps, "
                  f"burst interval {r['burst_interval_us']:.1f} us; dropped {r['dropped']} {r['drops']}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        for line in lines:
            print(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
