#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/frame,
fuzz/corpus/sa_file and fuzz/corpus/ticket_tlv) from the linuxptp capture and SA file in
../shared/testdata/linuxptp.

  fuzz/make_corpus.py --ptpsecctl build/control/ptpsecctl

Frames: messages of the capture as they are (L2, HMAC-SHA256-128, spp 2 key 1)
and stripped, wrapped again in VLAN, QinQ, UDPv4 (with and without checksum,
with IP options) and UDPv6 (with a hop-by-hop header), plus synthetic
Pdelay, Signaling (with a TICKET TLV) and Management messages. With
--ptpsecctl, unsigned frames are also signed with the GMAC and allow_mutable
keys of the SA file in fuzz/frame_fuzz.cpp, so that mutations start from
frames that verify. Run it again only to change the seeds; the files are
committed.
"""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTDATA = os.path.join(ROOT, "..", "shared", "testdata", "linuxptp")
CAPTURE = os.path.join(TESTDATA, "l2-hmac-sha256-128.pcap")
SA_CONF = os.path.join(TESTDATA, "sa.conf")

PTP_L2_DST = bytes.fromhex("011b19000000")
SRC_MAC = bytes.fromhex("22d81abc61ed")
TLV_AUTHENTICATION = 0x8009
TLV_TICKET = 0x2015


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    pos = 24
    frames = []
    while pos + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        pos += 16
        frames.append(data[pos:pos + caplen])
        pos += caplen
    return frames


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1000 + i, 0, len(fr), len(fr)))
            f.write(fr)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def message_type(msg):
    return msg[0] & 0x0F


def strip(msg):
    ml = struct.unpack("!H", msg[2:4])[0]
    # linuxptp puts one AUTHENTICATION TLV with a 16-octet ICV last.
    t, l = struct.unpack("!HH", msg[ml - 26:ml - 22])
    assert t == TLV_AUTHENTICATION and l == 22, (hex(t), l)
    out = bytearray(msg[:ml - 26])
    struct.pack_into("!H", out, 2, len(out))
    return bytes(out)


def l2(msg, tags=()):
    eth = PTP_L2_DST + SRC_MAC
    for tpid, tci in tags:
        eth += struct.pack("!HH", tpid, tci)
    return eth + struct.pack("!H", 0x88F7) + msg


def udp4(msg, port, with_checksum=True, options=b"", tags=()):
    src = bytes([192, 0, 2, 1])
    dst = bytes([224, 0, 1, 129])
    udp_len = 8 + len(msg)
    udp = struct.pack("!HHHH", port, port, udp_len, 0) + msg
    if with_checksum:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
        ck = checksum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", ck) + udp[8:]
    ihl = 5 + len(options) // 4
    total = ihl * 4 + udp_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0x4000, 1, 17, 0, src, dst) + options
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = bytes.fromhex("01005e000181") + SRC_MAC
    for tpid, tci in tags:
        eth += struct.pack("!HH", tpid, tci)
    return eth + struct.pack("!H", 0x0800) + ip + udp


def udp6(msg, port, hop_by_hop=False, tags=()):
    src = bytes.fromhex("fe800000000000000000000000000001")
    dst = bytes.fromhex("ff0e0000000000000000000000000181")
    udp_len = 8 + len(msg)
    udp = struct.pack("!HHHH", port, port, udp_len, 0) + msg
    pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
    ck = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", ck) + udp[8:]
    ext = b""
    nxt = 17
    if hop_by_hop:
        ext = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # next UDP, 8 octets, PadN
        nxt = 0
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(ext) + udp_len, nxt, 1, src, dst) + ext
    eth = bytes.fromhex("333300000181") + SRC_MAC
    for tpid, tci in tags:
        eth += struct.pack("!HH", tpid, tci)
    return eth + struct.pack("!H", 0x86DD) + ip + udp


def port_for(msg):
    # Sync, Delay_Req, Pdelay_Req, Pdelay_Resp are event messages (319).
    return 319 if message_type(msg) in (0, 1, 2, 3) else 320


def synthetic(template, mtype, body, tlvs=b"", control=5):
    msg = bytearray(template[:34]) + body + tlvs
    msg[0] = (template[0] & 0xF0) | mtype
    struct.pack_into("!H", msg, 2, len(msg))
    msg[32] = control
    return bytes(msg)


def sa_text_of_frame_fuzz():
    with open(os.path.join(HERE, "frame_fuzz.cpp")) as f:
        m = re.search(r'R"sa\((.*?)\)sa"', f.read(), re.S)
    return m.group(1)


def frame_seeds(ptpsecctl):
    frames = read_pcap(CAPTURE)
    first = {}
    for i, fr in enumerate(frames):
        ethertype = struct.unpack("!H", fr[12:14])[0]
        if ethertype != 0x88F7:
            first.setdefault("not-ptp", fr)
            continue
        msg = fr[14:]
        first.setdefault(message_type(msg), (i, fr, msg))
    names = {0x0: "sync", 0x1: "delay-req", 0x8: "follow-up", 0x9: "delay-resp", 0xB: "announce"}
    seeds = {}
    msgs = {}
    for t, name in names.items():
        _, fr, msg = first[t]
        seeds["l2-%s-hmac" % name] = fr
        msgs[name] = msg
    seeds["icmpv6-not-ptp"] = first["not-ptp"]
    plain = {name: strip(m) for name, m in msgs.items()}
    seeds["l2-sync-unsigned"] = l2(plain["sync"])
    seeds["l2-announce-unsigned"] = l2(plain["announce"])
    seeds["vlan-sync-hmac"] = l2(msgs["sync"], [(0x8100, 0x0064)])
    seeds["qinq-delay-resp-hmac"] = l2(msgs["delay-resp"], [(0x88A8, 0x0010), (0x8100, 0x0064)])
    seeds["vlan-follow-up-unsigned"] = l2(plain["follow-up"], [(0x8100, 0x2005)])
    seeds["udp4-sync-hmac"] = udp4(msgs["sync"], 319)
    seeds["udp4-follow-up-unsigned-no-checksum"] = udp4(plain["follow-up"], 320, with_checksum=False)
    seeds["udp4-options-announce-hmac"] = udp4(msgs["announce"], 320, options=bytes([1, 1, 1, 0]))
    seeds["udp4-vlan-delay-resp-unsigned"] = udp4(plain["delay-resp"], 320, tags=[(0x8100, 0x0007)])
    seeds["udp6-delay-req-hmac"] = udp6(msgs["delay-req"], 319)
    seeds["udp6-hbh-announce-unsigned"] = udp6(plain["announce"], 320, hop_by_hop=True)
    seeds["udp6-vlan-sync-unsigned"] = udp6(plain["sync"], 319, tags=[(0x8100, 0x0001)])

    tmpl = plain["sync"]
    pdelay_req = synthetic(tmpl, 0x2, bytes(20))
    pdelay_resp = synthetic(tmpl, 0x3, bytes(10) + tmpl[20:30])
    ticket = struct.pack("!HH", TLV_TICKET, 8) + bytes(range(8))
    signaling = synthetic(tmpl, 0xC, b"\xff" * 10, ticket)
    mgmt_tlv = struct.pack("!HHH", 0x0001, 2, 0x2000)  # MANAGEMENT, DEFAULT_DATA_SET
    management = synthetic(tmpl, 0xD, b"\xff" * 10 + bytes([1, 1, 0, 0]), mgmt_tlv)
    seeds["l2-pdelay-req-unsigned"] = l2(pdelay_req)
    seeds["udp6-pdelay-resp-unsigned"] = udp6(pdelay_resp, 319)
    seeds["l2-signaling-ticket-unsigned"] = l2(signaling)
    seeds["udp4-management-unsigned"] = udp4(management, 320)
    # A Sync with correctionField set, for the allow_mutable SA (spp 3).
    corr = bytearray(plain["sync"])
    corr[8:16] = struct.pack("!q", 0x12345 << 16)
    seeds["l2-sync-correction-unsigned"] = l2(bytes(corr))

    if ptpsecctl:
        seeds.update(signed_seeds(ptpsecctl, [
            ("l2-sync-gmac128", l2(plain["sync"]), 2, 6),
            ("udp4-announce-gmac192", udp4(plain["announce"], 320), 2, 7),
            ("udp6-delay-req-gmac256", udp6(plain["delay-req"], 319), 2, 8),
            ("l2-signaling-ticket-cmac", l2(signaling), 2, 3),
            ("vlan-delay-resp-sha256", l2(plain["delay-resp"], [(0x8100, 0x0064)]), 2, 2),
            ("l2-sync-correction-mutable-hmac", l2(bytes(corr)), 3, 1),
            ("udp4-follow-up-mutable-gmac", udp4(plain["follow-up"], 320), 3, 2),
        ]))
    return seeds


def signed_seeds(ptpsecctl, to_sign):
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        sa = os.path.join(tmp, "fuzz.conf")
        with open(sa, "w") as f:
            f.write(sa_text_of_frame_fuzz())
        for name, frame, spp, key in to_sign:
            src = os.path.join(tmp, "in.pcap")
            dst = os.path.join(tmp, "out.pcap")
            write_pcap(src, [frame])
            subprocess.run([ptpsecctl, "pcap", "sign", "--sa-file", sa, "--spp", str(spp), "--key-id", str(key),
                            src, dst], check=True, stdout=subprocess.DEVNULL)
            out[name] = read_pcap(dst)[0]
    return out


def sa_file_seeds():
    with open(SA_CONF, "rb") as f:
        sa_conf = f.read()
    return {
        "linuxptp-sa.conf": sa_conf,
        "linuxptp-sa-crlf.conf": sa_conf.replace(b"\n", b"\r\n"),
        "frame-fuzz.conf": sa_text_of_frame_fuzz().encode(),
        "gmac.conf": b"[security_association]\nspp 4\n"
                     b"1 AES128-GMAC 16 HEX:000102030405060708090a0b0c0d0e0f\n"
                     b"2 aes192-gmac B64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\n"
                     b"3 AES256-GMAC ASCII:0123456789abcdef0123456789abcdef\n",
        "multi.conf": b"# two SAs\n[SECURITY_ASSOCIATION]\nspp 0\nseqid_window 0\nallow_mutable 1\n"
                      b"seqnum_length 0\nres_length 0\n4294967295\tSHA256\tplain\n"
                      b"[security_association]\nspp 255\nseqid_window 32767\n1 SHA256-128 B64:AA==\n"
                      b"2 SHA256 B64:AAA=\nspp 17\n9 AES256 32 HEX:" + b"ab" * 32 + b"\n",
        "bad-base64.conf": b"[security_association]\nspp 2\n1 SHA256 B64:A=AA\n",
        "bad-hex.conf": b"[security_association]\nspp 2\n1 SHA256 HEX:0g\n",
        "bad-length.conf": b"[security_association]\nspp 2\n1 AES128 15 HEX:" + b"00" * 15 + b"\n",
        "no-keys.conf": b"[security_association]\nspp 2\nseqid_window 3\n",
        "unknown.conf": b"[global]\nfoo bar\n",
        "comments.conf": b"[security_association] # SA\nspp 2   # pointer\nseqid_window 3\t# window\n"
                         b"allow_mutable 0 #x\n1 SHA256-128 ASCII:key#1 # comment\n"
                         b"2 AES128 16 HEX:000102030405060708090a0b0c0d0e0f # length\n",
    }


def ticket_tlv_seeds():
    """TICKET TLV values: Ticket records (type 1034) with a 16-octet nonce and
    Encrypted SAs of the sizes real keys give (tag + 9 + 16/24/32 octets),
    odd ones padded; the octets inside are a fixed pattern, not real
    ciphertext. Also a bare Security Association body, for the sealing half
    of the target."""
    seeds = {}
    for key_len in (16, 24, 32):
        for critical in (0x8000, 0):
            enc = bytes((i * 7 + key_len) & 0xFF for i in range(16 + 9 + key_len))
            nonce = bytes(range(0xA0, 0xB0))
            body = struct.pack(">I", 278) + bytes(range(1, 11)) + struct.pack(">H", len(nonce)) + nonce
            body += struct.pack(">H", len(enc)) + enc
            rec = struct.pack(">HH", 1034 | critical, len(body)) + body
            if len(rec) % 2:
                rec += b"\0"
            seeds["ticket-%d%s" % (key_len, "-critical" if critical else "")] = rec
    seeds["sa-body"] = struct.pack(">BHIH", 2, 0, 41, 32) + bytes(range(32))
    return seeds


def write_dir(path, seeds):
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (path, len(seeds)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptpsecctl", help="ptpsecctl binary, to add GMAC and allow_mutable signed seeds")
    args = ap.parse_args()
    write_dir(os.path.join(HERE, "corpus", "frame"), frame_seeds(args.ptpsecctl))
    write_dir(os.path.join(HERE, "corpus", "sa_file"), sa_file_seeds())
    write_dir(os.path.join(HERE, "corpus", "ticket_tlv"), ticket_tlv_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
