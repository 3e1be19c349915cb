"""Server certificates with one defect each, for upstreams an intercepting
egressd must refuse (signed by the env fixture's test CA unless said)."""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _load_ca(ca_crt):
    with open(ca_crt, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(os.path.dirname(ca_crt), "ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def make_server_cert(directory, label, ca_crt, name="allowed.test", days=(-1, 2),
                     self_signed=False):
    """(cert path, key path) for `name`, valid from now+days[0] to now+days[1]."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    if self_signed:
        issuer, signer = subject, key
    else:
        ca_cert, signer = _load_ca(ca_crt)
        issuer = ca_cert.subject
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(signer, hashes.SHA256()))
    crt_path = os.path.join(directory, f"{label}.crt")
    key_path = os.path.join(directory, f"{label}.key")
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return crt_path, key_path
