"""Server certificates with one defect each, for upstreams an intercepting
egressd must refuse. Signed by the env fixture's test CA unless said."""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _load_ca(ca_crt):
    with open(ca_crt, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(os.path.dirname(ca_crt), "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def _build(subject_name, key, issuer_name, signer, days, san=None, eku=ExtendedKeyUsageOID.SERVER_AUTH,
           ca=False, digest=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)]))
         .issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days[0]))
         .not_valid_after(now + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(signer, digest or hashes.SHA256())


def _write(directory, label, certs, key):
    crt_path = os.path.join(directory, f"{label}.crt")
    key_path = os.path.join(directory, f"{label}.key")
    with open(crt_path, "wb") as f:
        for c in certs:  # leaf first, then the chain the server sends
            f.write(c.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return crt_path, key_path


def make_server_cert(directory, label, ca_crt, name="allowed.test", days=(-1, 2),
                     self_signed=False, defect=None):
    """(cert chain path, key path) for `name`, valid from now+days[0] to now+days[1].
    defect: "untrusted-root", "incomplete-chain", "leaf-as-ca", "client-auth-only",
    "rsa-1024", "sha1" (the server side of such a test must accept weak keys:
    see weak_server_context)."""
    ca_cert, ca_key = _load_ca(ca_crt)
    key = rsa.generate_private_key(65537, 1024) if defect == "rsa-1024" else \
        ec.generate_private_key(ec.SECP256R1())
    if self_signed:
        leaf = _build(name, key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key,
                      days, san=name)
        return _write(directory, label, [leaf], key)
    if defect == "untrusted-root":
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other CA")])
        return _write(directory, label, [_build(name, key, other, other_key, days, san=name)], key)
    if defect in ("incomplete-chain", "leaf-as-ca"):
        # An intermediate signed by the trusted CA: a real CA (the server does
        # not send it), or a plain leaf (sent, but it may not sign).
        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = _build("intermediate", mid_key, ca_cert.subject, ca_key, days,
                     san=None if defect == "incomplete-chain" else "intermediate.test",
                     eku=None if defect == "incomplete-chain" else ExtendedKeyUsageOID.SERVER_AUTH,
                     ca=defect == "incomplete-chain")
        leaf = _build(name, key, mid.subject, mid_key, days, san=name)
        return _write(directory, label, [leaf] if defect == "incomplete-chain" else [leaf, mid], key)
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if defect == "client-auth-only" else \
        ExtendedKeyUsageOID.SERVER_AUTH
    digest = hashes.SHA1() if defect == "sha1" else None
    leaf = _build(name, key, ca_cert.subject, ca_key, days, san=name, eku=eku, digest=digest)
    return _write(directory, label, [leaf], key)
