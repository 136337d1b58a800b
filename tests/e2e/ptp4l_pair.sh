#!/usr/bin/env bash
# End to end with a real PTP stack: Debian's ptp4l as master and slave in two
# network namespaces, each behind its own ptpsec-dataplane (net_af_packet on
# veths), with an untrusted veth segment between the data planes:
#
#   ns M: ptp4l master -- veth -- dataplane A -- u1|u2 -- dataplane B (ns B) -- veth -- ns S: ptp4l slave
#                                  sign out,      untrusted    sign out,
#                                  verify+strip in  segment    verify+strip in
#
# Data plane B has a network namespace of its own: DPDK's net_af_packet
# names its PACKET_FANOUT group (getpid() ^ ifindex), groups are per
# namespace, and two data planes in one namespace can draw the same number
# for two interfaces, which the kernel refuses.
#
# The slave must reach SLAVE with a measured path delay (Delay_Req and
# Delay_Resp cross both data planes too). Then an injector on the untrusted
# segment replays signed frames at once, replays them again later, and sends
# tampered copies: the slave must stay SLAVE, and data plane B must count
# every injected frame as dropped (replayed or bad_icv). Everything this
# script starts (processes, namespaces, links) is stopped and removed on exit,
# also on failure.
#
# Usage: ptp4l_pair.sh PTPSEC_DATAPLANE SA_FILE. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

dataplane=${1:?ptpsec-dataplane path}
sa_file=${2:?SA file}
tag=$$
ns_m=ptpsec-m$tag
ns_s=ptpsec-s$tag
ns_b=ptpsec-b$tag
# Interface names are at most 15 characters.
if_m=pm$tag; if_s=ps$tag; if_u1=pa$tag; if_u2=pb$tag
work=$(mktemp -d /tmp/ptpsec-e2e-XXXXXX)
pids=()

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; status=1; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
command -v ptp4l >/dev/null && command -v pmc >/dev/null || skip "ptp4l and pmc not installed (Debian package linuxptp)"
command -v ip >/dev/null || skip "ip not installed (iproute2)"

cleanup() {
  for pid in "${pids[@]}"; do
    kill -INT "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  ip netns del "$ns_m" 2>/dev/null
  ip netns del "$ns_s" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
  ip link del "$if_u1" 2>/dev/null
  ip link del "${if_m}a" 2>/dev/null
  ip link del "${if_s}a" 2>/dev/null
  rm -rf "/var/run/dpdk/ptpsec-e2e-a$tag" "/var/run/dpdk/ptpsec-e2e-b$tag"
  if [ "${status:-1}" -ne 0 ]; then
    for f in "$work"/*.log "$work"/*.out; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The links: one veth pair into each namespace, one pair for the untrusted segment.
ip netns add "$ns_m" && ip netns add "$ns_s" && ip netns add "$ns_b" || fail "cannot create network namespaces"
ip link add "${if_m}a" type veth peer name "${if_m}b" netns "$ns_m" || fail "veth"
ip link add "${if_s}a" type veth peer name "${if_s}b" netns "$ns_s" || fail "veth"
ip link set "${if_s}a" netns "$ns_b" || fail "veth"
ip link add "$if_u1" type veth peer name "$if_u2" netns "$ns_b" || fail "veth"
# checksums are ours to keep right: no offload on the way
for i in "${if_m}a" "$if_u1"; do
  ip link set "$i" up promisc on
  ethtool -K "$i" tx off >/dev/null 2>&1 || true
done
for i in "${if_s}a" "$if_u2"; do
  ip netns exec "$ns_b" ip link set "$i" up promisc on
  ip netns exec "$ns_b" ethtool -K "$i" tx off >/dev/null 2>&1 || true
done
ip netns exec "$ns_m" ip link set "${if_m}b" up
ip netns exec "$ns_s" ip link set "${if_s}b" up

# The two data planes, one lcore each.
start_dataplane() { # name lcore inside outside [command prefix...]
  local name=$1 lcore=$2 inside=$3 outside=$4
  shift 4
  "$@" "$dataplane" -l "$lcore" --no-huge -m 256 --no-pci --no-shconf --file-prefix "ptpsec-e2e-$name$tag" \
    --vdev "net_af_packet0,iface=$inside" --vdev "net_af_packet1,iface=$outside" \
    -- --sa-file "$sa_file" --sign 2:1 --outside-policy verify-strip --stats-json "$work/$name.json" \
    > "$work/dataplane-$name.out" 2>&1 &
  pids+=($!)
}
start_dataplane a 0 "${if_m}a" "$if_u1"
start_dataplane b 1 "${if_s}a" "$if_u2" ip netns exec "$ns_b"
sleep 2

cat > "$work/master.cfg" <<EOF
[global]
network_transport L2
time_stamping software
logSyncInterval -2
logAnnounceInterval 0
logMinDelayReqInterval -2
priority1 100
uds_address $work/master.sock
EOF
# free_running: CLOCK_REALTIME is not per namespace; the slave must never
# steer the machine's clock.
cat > "$work/slave.cfg" <<EOF
[global]
network_transport L2
time_stamping software
slaveOnly 1
free_running 1
logSyncInterval -2
logMinDelayReqInterval -2
uds_address $work/slave.sock
EOF
ip netns exec "$ns_m" ptp4l -f "$work/master.cfg" -i "${if_m}b" -m > "$work/master.log" 2>&1 &
pids+=($!)
ip netns exec "$ns_s" ptp4l -f "$work/slave.cfg" -i "${if_s}b" -m > "$work/slave.log" 2>&1 &
pids+=($!)

pmc_slave() { ip netns exec "$ns_s" pmc -u -b 0 -s "$work/slave.sock" "$@" 2>/dev/null; }

wait_for() { # seconds pattern file
  for _ in $(seq $(( $1 * 10 ))); do
    grep -q "$2" "$3" && return 0
    sleep 0.1
  done
  return 1
}

# A free-running slave stays UNCALIBRATED until told its clock is usable.
wait_for 30 "UNCALIBRATED" "$work/slave.log" || fail "the slave never heard the master through the data planes"
pmc_slave 'SET SYNCHRONIZATION_UNCERTAIN_NP 0' > /dev/null
wait_for 30 "to SLAVE" "$work/slave.log" || fail "the slave did not reach SLAVE"
sleep 3
delay=$(pmc_slave 'GET CURRENT_DATA_SET' | awk '/meanPathDelay/ {print $2}')
echo "slave: SLAVE, meanPathDelay ${delay:-?} ns"
awk -v d="${delay:-0}" 'BEGIN { exit !(d > 0) }' || fail "no path delay measured: Delay_Req/Delay_Resp did not cross"
lines_before=$(grep -c "rms\|offset" "$work/slave.log")

# The attack on the untrusted segment.
# The attacker sits on the segment: it records signed frames as they arrive
# at data plane B's side (in B's namespace), then sends from A's side.
cat > "$work/inject.py" <<'EOF'
import pickle, socket, sys, time
mode, ifname, path = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "sniff":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((ifname, 0))
    s.settimeout(5)
    frames, end = [], time.time() + 3
    while time.time() < end and len(frames) < 40:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        if addr[2] != 4 and data[12:14] == b'\x88\xf7':  # signed PTP from data plane A
            frames.append(data)
    pickle.dump(frames, open(path, "wb"))
    print(len(frames))
else:
    frames = pickle.load(open(path, "rb"))
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    out.bind((ifname, 0))
    for f in frames:
        out.send(f)                           # replay at once
    time.sleep(1.5)
    for f in frames:
        out.send(f)                           # hold, then replay
    for f in frames:
        t = bytearray(f); t[14 + 34] ^= 1     # tamper: first body octet, ICV as it was
        out.send(bytes(t))
EOF
captured=$(ip netns exec "$ns_b" python3 "$work/inject.py" sniff "$if_u2" "$work/frames") || fail "injector failed"
python3 "$work/inject.py" send "$if_u1" "$work/frames" || fail "injector failed"
[ "${captured:-0}" -gt 10 ] || fail "injector captured only ${captured:-0} frames"
echo "injected: $captured replays, $captured late replays, $captured tampered"
sleep 3

state=$(pmc_slave 'GET PORT_DATA_SET' | awk '/portState/ {print $2}')
[ "$state" = "SLAVE" ] || fail "slave is $state after the attack"
lines_after=$(grep -c "rms\|offset" "$work/slave.log")
[ "$lines_after" -gt "$lines_before" ] || fail "the slave stopped logging offsets"

for pid in "${pids[@]:0:2}"; do kill -INT "$pid"; done
for pid in "${pids[@]:0:2}"; do wait "$pid" || fail "a data plane did not stop cleanly"; done
python3 - "$work/b.json" "$captured" <<'EOF' || fail "data plane B's counters"
import json, sys
paths = {p["name"]: p for p in json.load(open(sys.argv[1]))["paths"]}
n = int(sys.argv[2])
rx = paths["outside->inside"]
drops = rx["drops"]
print(f"data plane B outside->inside: verified {rx['verified']}, dropped {rx['dropped']}: {drops}")
assert rx["verified"] > 0, "nothing verified"
assert drops.get("bad_icv", 0) == n, f"tampered: {drops.get('bad_icv', 0)} of {n} counted"
assert drops.get("replayed", 0) + drops.get("too_old", 0) == 2 * n, "replays not all counted"
assert rx["dropped"] == 3 * n, "other drops"
assert paths["inside->outside"]["dropped"] == 0 and paths["inside->outside"]["signed"] > 0
EOF
status=0
echo "PASS"
