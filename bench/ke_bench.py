#!/usr/bin/env python3
"""NTS-KE server handshakes per second per core: ptpsec-controld against chrony.

Both servers run on the same machine in the same run, with certificates of
the same type from one throw-away PKI (openssl CLI, in a temporary
directory): a CA, a server certificate (SAN DNS:localhost, IP:127.0.0.1)
and a client certificate. Each server is pinned to one core (taskset
--server-core); ptpsec-ke-bench, the load generator, to the other
(--client-core).

  ptpsec    ptpsec-controld, [server] on 127.0.0.1 with one group; its
            NTS-KE loop is one thread. Asked with PTP Key Requests in group
            mode; TLS 1.3 with a client certificate (seeds/001 §2.5.4: the
            server requires one and verifies it against the CA).
  chrony    chronyd -x -u root with its own configuration: ntsservercert,
            ntsserverkey, ntsport, no NTP port (port 0), no command sockets
            (cmdport 0, bindcmdaddress /), ntsprocesses 0 (the NTS-KE server
            runs in the main process, one thread: the same shape as ours),
            allow 127.0.0.1 (chrony applies its NTP access rules, deny all
            by default, to NTS-KE connections too).
            Asked with the RFC 8915 NTPv4 request; TLS 1.3 without a client
            certificate (chrony asks for none).

Each exchange is a new TCP connection, a full TLS 1.3 handshake (no session
resumption, no tickets), one request, the whole response, close_notify and
close. With --resume, ptpsec-controld issues session tickets (session-lifetime-s,
seeds/001 §2.1) and each load thread offers every server the session of its
previous exchange: a server that takes it skips the certificates and their
signatures (the JSON counts the handshakes that resumed); ptpsec-ke-bench keeps --concurrency of them going. Each repetition
measures every server for every certificate type, the order of the servers
alternating from one repetition to the next. The CPU time of the server's
processes over the measured window (utime + stime from /proc) gives its CPU
share; handshakes per server CPU-second is the rate one core would give if
the server had it all, which is what "per core" means when the load
generator (on one core too) cannot saturate it.

Ends with one line per certificate type and server (medians):
    CERT SERVER rate RATE cpu CPU_PCT per_core_s PER_CORE p50 P50_US p99 P99_US failures N
and writes the results as JSON (--json) for scripts/bench-report.py.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

JSON_FORMAT = 1
CERT_TYPES = {
    # name: openssl req -newkey argument, its -pkeyopt, key usage of an end-entity certificate
    "ecdsa-p256": ("ec", ["-pkeyopt", "ec_paramgen_curve:P-256"], "digitalSignature"),
    "rsa-2048": ("rsa:2048", [], "digitalSignature,keyEncipherment"),
}
SERVERS = ["ptpsec", "chrony"]
CLIENT_SAN = "DNS:node.bench.example"
START_TIMEOUT_S = 20


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_pki(work, cert_type):
    """CA, server and client certificate, all keys of `cert_type`."""
    newkey, pkeyopt, usage = CERT_TYPES[cert_type]
    d = os.path.join(work, cert_type)
    os.makedirs(d)

    def p(name):
        return os.path.join(d, name)

    run(["openssl", "req", "-x509", "-new", "-newkey", newkey] + pkeyopt +
        ["-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", "/O=ptpsec bench/CN=bench CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    for name, cn, san, eku in [("server", "localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth"),
                               ("client", "node.bench.example", CLIENT_SAN, "clientAuth")]:
        run(["openssl", "req", "-new", "-newkey", newkey] + pkeyopt +
            ["-nodes", "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"), "-subj", f"/O=ptpsec bench/CN={cn}"])
        with open(p(f"{name}.ext"), "w") as f:
            f.write(f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,{usage}\nextendedKeyUsage={eku}\n"
                    f"subjectAltName={san}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        run(["openssl", "x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", p(f"{name}.ext"), "-out", p(f"{name}.pem")])
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, log_path, what):
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"ke_bench: {what} exited with {proc.returncode} at start; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"ke_bench: {what} does not listen on port {port} after {START_TIMEOUT_S} s; see {log_path}")


class server_process:
    """A server pinned to one core, stopped by PID (stop(), also on failure)."""

    def __init__(self, name, cert_type, cmd, log_path, port, core):
        self.name = name
        self.cert_type = cert_type
        self.port = port
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(["taskset", "-c", str(core)] + cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.exit_output = ""

    def pids(self):
        """The process and its children (chronyd's NTS-KE helpers, if any)."""
        pids = [self.proc.pid]
        try:
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return pids

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        with open(self.log_path) as f:
            self.exit_output = f.read()


def start_ptpsec(build, pki, work, core, running, resume):
    controld = os.path.join(build, "control", "controld", "ptpsec-controld")
    port = free_port()
    conf = os.path.join(work, f"controld-{os.path.basename(pki)}.toml")
    with open(conf, "w") as f:
        f.write(f"""[admin]
enabled = false

[server]
listen = ["127.0.0.1"]
port = {port}
certificate = "{pki}/server.pem"
private-key = "{pki}/server.key"
ca = "{pki}/ca.pem"
state = "{work}/controld-{os.path.basename(pki)}.db"
max-connections = 4096
connections-per-second = 1000000
connection-burst = 1000000
{"session-lifetime-s = 3600" if resume else ""}

[[group]]
name = "bench"
domain = 0
sdo-id = 0x000
subgroup = 0
algorithm = "hmac-sha256-128"
lifetime = 14400
update-period = 300
grace-period = 3

[[client]]
san = "{CLIENT_SAN}"
groups = ["bench"]
""")
    s = server_process("ptpsec", os.path.basename(pki), [controld, "--config", conf],
                       os.path.join(work, f"controld-{os.path.basename(pki)}.log"), port, core)
    running.append(s)  # stopped by the caller, also when it does not start
    wait_listening(s.proc, port, s.log_path, "ptpsec-controld")
    return s


def find_chronyd(build, given):
    """chronyd to run and its Debian version: `given`, else the one
    scripts/unpack-chrony.sh put into the build, else an installed one;
    (None, None) if there is none."""
    unpacked = os.path.join(build, "chrony")
    candidates = [given] if given else [os.path.join(unpacked, "usr", "sbin", "chronyd"),
                                        shutil.which("chronyd"), "/usr/sbin/chronyd"]
    for exe in candidates:
        if exe and os.access(exe, os.X_OK):
            version_file = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(exe))), "VERSION")
            try:
                with open(version_file) as f:
                    return exe, f.read().strip()
            except OSError:
                return exe, package_version("chrony")
    return None, None


def start_chrony(chronyd, pki, work, core, processes, running):
    port = free_port()
    tag = os.path.basename(pki)
    dump = os.path.join(work, f"chrony-{tag}")
    os.makedirs(dump)
    conf = os.path.join(work, f"chrony-{tag}.conf")
    with open(conf, "w") as f:
        f.write(f"""# NTS-KE server only: no NTP port, no command sockets, no clock control (-x)
port 0
bindaddress 127.0.0.1
# NTS-KE clients are subject to the NTP access rules (deny all by default)
allow 127.0.0.1
cmdport 0
bindcmdaddress /
pidfile {dump}/chronyd.pid
ntsport {port}
ntsservercert {pki}/server.pem
ntsserverkey {pki}/server.key
ntsprocesses {processes}
maxntsconnections 512
ntsdumpdir {dump}
""")
    s = server_process("chrony", tag, [chronyd, "-d", "-x", "-u", "root", "-f", conf],
                       os.path.join(work, f"chrony-{tag}.log"), port, core)
    running.append(s)
    wait_listening(s.proc, port, s.log_path, "chronyd")
    # The helpers (ntsprocesses > 0) are forked once the main process runs.
    deadline = time.time() + 5
    while processes > 0 and len(s.pids()) < 1 + processes and time.time() < deadline:
        time.sleep(0.05)
    return s


def load(build, server, pki, args, cert_type, rep, work):
    ke_bench = os.path.join(build, "bench", "ptpsec-ke-bench")
    out = os.path.join(work, f"{server.name}-{cert_type}-{rep}.json")
    cmd = [ke_bench, "--host", "127.0.0.1", "--port", str(server.port), "--server-name", "localhost",
           "--duration", str(args.duration), "--warmup", str(args.warmup), "--concurrency", str(args.concurrency),
           "--json", out]
    if args.verify_server:
        cmd += ["--ca", f"{pki}/ca.pem"]
    else:
        cmd += ["--no-verify"]
    if server.name == "ptpsec":
        cmd += ["--protocol", "ptp", "--cert", f"{pki}/client.pem", "--key", f"{pki}/client.key"]
    else:
        cmd += ["--protocol", "ntp"]
    for pid in server.pids():
        cmd += ["--cpu-pid", str(pid)]
    if args.resume:
        cmd += ["--resume"]
    r = subprocess.run(["taskset", "-c", str(args.client_core)] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"ke_bench: ptpsec-ke-bench against {server.name} ({cert_type}) failed: {r.stderr.strip()}")
    with open(out) as f:
        return json.load(f)


def median(values):
    return statistics.median(values) if values else 0


def summarise(runs):
    out = []
    for cert_type in dict.fromkeys(r["cert"] for r in runs):
        for name in SERVERS:
            mine = [r["result"] for r in runs if r["cert"] == cert_type and r["server"] == name]
            if not mine:
                continue
            rates = [m["handshakes_per_s"] for m in mine]
            per_core = [m.get("handshakes_per_server_cpu_s", 0) for m in mine]
            out.append({
                "cert": cert_type,
                "server": name,
                "repetitions": len(mine),
                "handshakes_per_s": median(rates),
                "handshakes_per_s_min": min(rates),
                "handshakes_per_s_max": max(rates),
                "server_cpu_fraction": median([m.get("server_cpu_fraction", 0) for m in mine]),
                "client_cpu_fraction": median([m["client_cpu_fraction"] for m in mine]),
                "handshakes_per_core_s": median(per_core),
                "handshakes_per_core_s_min": min(per_core),
                "handshakes_per_core_s_max": max(per_core),
                "latency_p50_us": median([m["latency_us"]["p50"] for m in mine]),
                "latency_p99_us": median([m["latency_us"]["p99"] for m in mine]),
                "handshakes": sum(m["handshakes"] for m in mine),
                "resumed": sum(m.get("resumed", 0) for m in mine),
                "failures": sum(m["failures"] for m in mine),
                "tls_group": mine[0]["tls"]["group"],
                "tls_cipher": mine[0]["tls"]["cipher"],
                "response_octets": mine[0]["tls"]["response_octets"],
            })
    return out


def package_version(name):
    try:
        return run(["dpkg-query", "-W", "-f=${Version}", name]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--cert-types", default="ecdsa-p256,rsa-2048",
                    help=f"comma-separated, of {', '.join(CERT_TYPES)} (default: both)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, of ptpsec, chrony")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each cell")
    ap.add_argument("--duration", type=float, default=8, help="seconds measured per run")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of load before each measurement")
    ap.add_argument("--concurrency", type=int, default=16, help="connections at a time")
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--chronyd", help="chronyd to compare with (default: BUILD/chrony/usr/sbin/chronyd, which "
                    "scripts/unpack-chrony.sh puts there, else an installed one)")
    ap.add_argument("--chrony-processes", type=int, default=0,
                    help="chrony's ntsprocesses (0: the NTS-KE server in the main process)")
    ap.add_argument("--resume", action="store_true",
                    help="offer TLS session resumption (ptpsec-controld with session tickets)")
    ap.add_argument("--verify-server", action="store_true",
                    help="the load generator verifies the server certificate too (default: not, to spend its "
                         "core on load)")
    args = ap.parse_args()
    cert_types = [c for c in args.cert_types.split(",") if c]
    servers = [s for s in args.servers.split(",") if s]
    for c in cert_types:
        if c not in CERT_TYPES:
            sys.exit(f"ke_bench: unknown certificate type {c}; use {', '.join(CERT_TYPES)}")
    chronyd, chrony_version = find_chronyd(args.build, args.chronyd)
    if "chrony" in servers and chronyd is None:
        print(f"ke_bench: chronyd not found (scripts/unpack-chrony.sh {args.build}/chrony puts it there, as make "
              "bench does): measuring ptpsec only", file=sys.stderr)
        servers.remove("chrony")
    if os.geteuid() != 0 and "chrony" in servers:
        sys.exit("ke_bench: chronyd needs root")

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load_before = os.getloadavg()
    work = tempfile.mkdtemp(prefix="ptpsec-kebench-")
    running = []
    runs = []
    finished = False
    try:
        for cert_type in cert_types:
            pki = make_pki(work, cert_type)
            procs = {}
            for name in servers:
                if name == "ptpsec":
                    procs[name] = start_ptpsec(args.build, pki, work, args.server_core, running, args.resume)
                else:
                    procs[name] = start_chrony(chronyd, pki, work, args.server_core, args.chrony_processes,
                                               running)
            for rep in range(args.reps):
                order = servers if rep % 2 == 0 else list(reversed(servers))
                for name in order:
                    r = load(args.build, procs[name], pki, args, cert_type, rep, work)
                    runs.append({"cert": cert_type, "server": name, "rep": rep, "result": r})
                    print(f"  {cert_type} {name} rep {rep}: {r['handshakes_per_s']:.0f}/s, server CPU "
                          f"{100 * r.get('server_cpu_fraction', 0):.0f}%, {r.get('handshakes_per_server_cpu_s', 0):.0f}"
                          f" per core-second, client CPU {100 * r['client_cpu_fraction']:.0f}%, p50 "
                          f"{r['latency_us']['p50']} us p99 {r['latency_us']['p99']} us, failures {r['failures']}",
                          flush=True)
            for s in procs.values():
                s.stop()
        finished = True
    finally:
        for s in running:
            if s.proc.poll() is None or not s.log.closed:
                s.stop()
        if not finished:
            print(f"ke_bench: stopped early; the servers' logs are in {work}", file=sys.stderr)
    # What each server said when it stopped (ptpsec-controld prints its counters).
    server_exit = {f"{s.name} {s.cert_type}": s.exit_output[-2000:] for s in running}
    shutil.rmtree(work, ignore_errors=True)

    summary = summarise(runs)
    results = {
        "format": JSON_FORMAT,
        "date": started,
        "command": "python3 bench/ke_bench.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
            "chrony": chrony_version or "none",
            "gnutls": package_version("libgnutls30"),
            "openssl": package_version("libssl3"),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repetitions": args.reps,
            "concurrency": args.concurrency,
            "server_core": args.server_core,
            "client_core": args.client_core,
            "chrony_processes": args.chrony_processes,
            "verify_server": args.verify_server,
            "resume": args.resume,
        },
        "summary": summary,
        "runs": runs,
        "server_exit_output": server_exit,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for c in summary:
        print(f"{c['cert']} {c['server']} rate {c['handshakes_per_s']:.0f} cpu {100 * c['server_cpu_fraction']:.0f} "
              f"per_core_s {c['handshakes_per_core_s']:.0f} p50 {c['latency_p50_us']} p99 {c['latency_p99_us']} "
              f"failures {c['failures']} resumed {c['resumed']} of {c['handshakes']}")


if __name__ == "__main__":
    main()
