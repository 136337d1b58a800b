#!/usr/bin/python3
"""Second, independent check of a ptpsec evidence log (docs/attestation.md).

Written against the format document with cbor2 and cryptography only, to
cross-check the C++ implementation: it decodes every log record of an
RFC 8742 CBOR sequence, rebuilds each batch's Merkle root from the leaves
the RFC 9162 way (recursive split at the largest power of two), compares
it with the signed root, rebuilds the COSE Sig_structure (RFC 9052 §4.4)
and verifies the ES256 or EdDSA signature with the signer's public key,
and checks each leaf's claims against its batch and the chain between
batches.

usage: independent_check.py --log LOG --public-key KEY.der

Exit 0 with a summary on success; 1 with the reason on the first failure;
2 for a usage error.
"""

import argparse
import hashlib
import io
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ES256 = -7
EDDSA = -8
ZERO_ROOT = bytes(32)

# Batch payload keys.
P_VERSION, P_SIGNER, P_BACKEND, P_HW, P_COUNTER, P_TIME, P_ROOT, P_COUNT = 1, 2, 3, 4, 5, 6, 7, 8
P_FIRST, P_LAST, P_PREVIOUS, P_MISSED, P_NONCE = 9, 10, 11, 12, 13
# Claims keys.
C_VERSION, C_COUNTER, C_SIGNER, C_NONCE, C_INDEX = 1, 7, 8, 6, -7


class Failure(Exception):
    pass


def leaf_hash(leaf):
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """RFC 9162 §2.1.1, literally."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_signature(key, alg, message, signature):
    if len(signature) != 64:
        raise Failure(f"signature is {len(signature)} octets, not 64")
    try:
        if alg == ES256:
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise Failure("ES256 token but the key is not P-256")
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        elif alg == EDDSA:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise Failure("EdDSA token but the key is not Ed25519")
            key.verify(signature, message)
        else:
            raise Failure(f"algorithm {alg} is not ES256 or EdDSA")
    except InvalidSignature:
        raise Failure("the signature does not verify") from None


def check_record(raw, record, key, previous):
    if not isinstance(record, dict) or set(record) != {1, 2, 3}:
        raise Failure("a log record is a map with keys 1, 2, 3")
    if record[1] != 1:
        raise Failure(f"record type {record[1]} is not 1 (batch)")
    if cbor2.dumps(record, canonical=True) != raw:
        raise Failure("the record does not re-encode to the same octets (not deterministic CBOR)")
    token = record[2]
    if not isinstance(token, cbor2.CBORTag) or token.tag != 18:
        raise Failure("the token is not a COSE_Sign1 (tag 18)")
    if not isinstance(token.value, list) or len(token.value) != 4:
        raise Failure("the COSE_Sign1 is not an array of 4")
    protected, unprotected, payload_bytes, signature = token.value
    header = cbor2.loads(protected)
    if set(header) != {1}:
        raise Failure("the protected header is not {1: alg}")
    alg = header[1]
    if set(unprotected) != {4}:
        raise Failure("the unprotected header is not {4: kid}")
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload_bytes])
    verify_signature(key, alg, sig_structure, signature)

    payload = cbor2.loads(payload_bytes)
    if payload[P_VERSION] != 1:
        raise Failure(f"payload version {payload[P_VERSION]}")
    signer_id = payload[P_SIGNER]
    if unprotected[4] != signer_id.encode():
        raise Failure("kid is not the signer_id")
    if payload[P_BACKEND] == "software" and payload[P_HW] is not False:
        raise Failure("a software signer claims to be hardware-rooted")
    leaves = record[3]
    if len(leaves) != payload[P_COUNT]:
        raise Failure(f"{len(leaves)} leaves but event_count {payload[P_COUNT]}")
    if mth(leaves) != payload[P_ROOT]:
        raise Failure(f"batch {payload[P_COUNTER]}: the Merkle root of the leaves is not the signed root")

    last_index = None
    for i, leaf in enumerate(leaves):
        claims = cbor2.loads(leaf)
        if claims[C_VERSION] != 1:
            raise Failure(f"leaf {i}: claims version {claims[C_VERSION]}")
        if claims[C_COUNTER] != payload[P_COUNTER] or claims[C_SIGNER] != signer_id:
            raise Failure(f"leaf {i}: counter or signer_id differs from the batch")
        if claims[C_NONCE] != payload.get(P_NONCE):
            raise Failure(f"leaf {i}: nonce differs from the batch")
        index = claims[C_INDEX]
        if last_index is not None and index <= last_index:
            raise Failure(f"leaf {i}: event index {index} does not increase")
        if i == 0 and index != payload[P_FIRST]:
            raise Failure(f"leaf 0: event index {index} is not first_event_index")
        last_index = index
    if last_index != payload[P_LAST]:
        raise Failure("the last leaf's event index is not last_event_index")

    if previous is None:
        if payload[P_PREVIOUS] == ZERO_ROOT:
            if payload[P_MISSED] != payload[P_LAST] + 1 - payload[P_COUNT]:
                raise Failure("first batch: missed_events disagrees with its event indexes")
    else:
        if payload[P_COUNTER] <= previous[P_COUNTER]:
            raise Failure(f"counter {payload[P_COUNTER]} does not increase from {previous[P_COUNTER]}")
        if payload[P_PREVIOUS] != previous[P_ROOT]:
            raise Failure(f"batch {payload[P_COUNTER]}: previous_root is not the previous batch's root")
        if payload[P_FIRST] <= previous[P_LAST]:
            raise Failure(f"batch {payload[P_COUNTER]}: event indexes overlap the previous batch")
        if payload[P_MISSED] != payload[P_LAST] - previous[P_LAST] - payload[P_COUNT]:
            raise Failure(f"batch {payload[P_COUNTER]}: missed_events disagrees with the event indexes")
    return payload, alg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="evidence log: a CBOR sequence of log records")
    parser.add_argument("--public-key", required=True, help="the signer's public key, DER SubjectPublicKeyInfo")
    args = parser.parse_args()

    try:
        with open(args.public_key, "rb") as f:
            key = serialization.load_der_public_key(f.read())
        with open(args.log, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1

    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(stream)
    previous = None
    batches = 0
    events = 0
    first_counter = None
    algorithms = set()
    try:
        while stream.tell() < len(data):
            start = stream.tell()
            try:
                record = decoder.decode()
            except (cbor2.CBORDecodeError, EOFError, ValueError) as e:
                raise Failure(f"the record at offset {start} does not decode: {e}") from None
            raw = data[start : stream.tell()]
            try:
                payload, alg = check_record(raw, record, key, previous)
            except (KeyError, TypeError, AttributeError, ValueError, cbor2.CBORDecodeError) as e:
                raise Failure(f"the record at offset {start} is malformed: {e!r}") from None
            except Failure as e:
                raise Failure(f"the record at offset {start}: {e}") from None
            previous = payload
            batches += 1
            events += payload[P_COUNT]
            algorithms.add("ES256" if alg == ES256 else "EdDSA")
            if first_counter is None:
                first_counter = payload[P_COUNTER]
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    if batches == 0:
        print("FAIL: the log holds no records", file=sys.stderr)
        return 1
    print(
        f"OK: {batches} batches, {events} events, signer {previous[P_SIGNER]!r} ({previous[P_BACKEND]}), "
        f"counters {first_counter}..{previous[P_COUNTER]}, {'/'.join(sorted(algorithms))}, "
        f"last root {previous[P_ROOT].hex()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
