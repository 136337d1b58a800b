#!/usr/bin/env python3
"""Writes a pcap file's frames into a FIFO (or file) again and again at a fixed
rate for a while: a steady, paced stream for a DPDK net_pcap rx_pcap, which
otherwise replays a capture as fast as it can.

    pcap-feed.py IN.pcap OUT_FIFO --rate 5000 --seconds 4
"""
import argparse
import struct
import sys
import time


def frames(path):
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24 or header[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            sys.exit(f"pcap-feed: {path} is not a little-endian pcap file")
        out = []
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            _, _, caplen, _ = struct.unpack("<IIII", rec)
            out.append(rec + f.read(caplen))
        return header, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--rate", type=float, default=5000, help="frames per second")
    ap.add_argument("--seconds", type=float, default=4, help="how long to feed")
    args = ap.parse_args()
    header, recs = frames(args.input)
    if not recs:
        sys.exit(f"pcap-feed: {args.input} has no frames")
    start = time.monotonic()
    sent = 0
    with open(args.output, "wb", buffering=0) as out:
        out.write(header)
        while time.monotonic() - start < args.seconds:
            # Bursts of 50 frames, then wait until the schedule catches up.
            burst = b"".join(recs[(sent + i) % len(recs)] for i in range(50))
            out.write(burst)
            sent += 50
            lag = start + sent / args.rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    print(f"pcap-feed: {sent} frames in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
