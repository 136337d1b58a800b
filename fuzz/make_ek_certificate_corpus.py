#!/usr/bin/env python3
"""Writes the trust files and seed corpus of ptpsec-fuzz-ek-certificate.

fuzz/ek_certificate/ (what the harness checks every input against):
  ca.pem     a TPM vendor's EK CA (ECDSA P-256), valid until 9999
  crl.pem    that CA's CRL, next update in 2126, listing serial 0x2002
  ek.spki    the EK's DER SubjectPublicKeyInfo (P-256)

fuzz/corpus/ek_certificate/ (seeds, each a DER certificate as a TPM's NV
index holds it):
  ek-valid           the EK's certificate: chains, not revoked
  ek-padded          the same with 0xff padding after it, as NV indices
                     larger than the certificate read back
  ek-revoked         the EK's certificate, serial 0x2002, listed in the CRL
  ek-other-key       a certificate of another key from the same CA
  ek-other-issuer    the EK's certificate from a CA not trusted
  ek-unreadable-key  the EK's certificate with its point's first octet 0x05
                     (no point form): it parses, its key does not
  not-a-certificate  a DER SEQUENCE of two INTEGERs

Run it again only to change the files; they are committed (keys are drawn
afresh, so every file changes together).
"""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

here = os.path.dirname(os.path.abspath(__file__))
trust = os.path.join(here, "ek_certificate")
corpus = os.path.join(here, "corpus", "ek_certificate")
os.makedirs(trust, exist_ok=True)
os.makedirs(corpus, exist_ok=True)

start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
forever = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example TPM Vendor"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
            .public_key(key.public_key()).serial_number(1).not_valid_before(start).not_valid_after(forever)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def ek_cert(ca_key, ca_cert, public_key, serial):
    # TCG EK Credential Profile: an empty subject is allowed; keyEncipherment.
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
            .public_key(public_key).serial_number(serial).not_valid_before(start).not_valid_after(forever)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(x509.Name([
                x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.1"), "id:00001014"),
                x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.2"), "SLB9670"),
                x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.3"), "id:000D0007")]))]), critical=True)
            .sign(ca_key, hashes.SHA256()))


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


ca_key, ca_cert = ca("Example EK CA")
other_ca_key, other_ca_cert = ca("Another EK CA")
ek_key = ec.generate_private_key(ec.SECP256R1())
other_key = ec.generate_private_key(ec.SECP256R1())

crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
       .last_update(start).next_update(datetime.datetime(2126, 1, 1, tzinfo=datetime.timezone.utc))
       .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(0x2002)
                                .revocation_date(datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc)).build())
       .sign(ca_key, hashes.SHA256()))

write(os.path.join(trust, "ca.pem"), ca_cert.public_bytes(serialization.Encoding.PEM))
write(os.path.join(trust, "crl.pem"), crl.public_bytes(serialization.Encoding.PEM))
write(os.path.join(trust, "ek.spki"), ek_key.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

valid = der(ek_cert(ca_key, ca_cert, ek_key.public_key(), 0x2001))
write(os.path.join(corpus, "ek-valid"), valid)
write(os.path.join(corpus, "ek-padded"), valid + b"\xff" * (1024 - len(valid)))
write(os.path.join(corpus, "ek-revoked"), der(ek_cert(ca_key, ca_cert, ek_key.public_key(), 0x2002)))
write(os.path.join(corpus, "ek-other-key"), der(ek_cert(ca_key, ca_cert, other_key.public_key(), 0x2003)))
write(os.path.join(corpus, "ek-other-issuer"), der(ek_cert(other_ca_key, other_ca_cert, ek_key.public_key(), 0x2004)))
unreadable = bytearray(valid)
point = unreadable.index(b"\x03\x42\x00\x04")
unreadable[point + 3] = 0x05
write(os.path.join(corpus, "ek-unreadable-key"), bytes(unreadable))
write(os.path.join(corpus, "not-a-certificate"), bytes.fromhex("3006020101020102"))
