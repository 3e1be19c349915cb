#include "ca/openssl_util.h"

#include <openssl/pem.h>
#include <openssl/rand.h>

namespace egressd::ca {

Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return EGRESSD_OPENSSL_ERROR("random serial");
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x40;  // and never zero, always 16 octets long
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn) return EGRESSD_OPENSSL_ERROR("random serial");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("random serial");
  return {};
}

Status SetValidity(X509* cert, time_t now, long backdate_s, long valid_s) {
  if (!ASN1_TIME_adj(X509_getm_notBefore(cert), now, 0, -backdate_s) ||
      !ASN1_TIME_adj(X509_getm_notAfter(cert), now, static_cast<int>(valid_s / 86400),
                     valid_s % 86400))
    return EGRESSD_OPENSSL_ERROR("certificate validity");
  return {};
}

StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return EGRESSD_OPENSSL_ERROR("writing the certificate as PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

StatusOr<X509ExtensionPtr> MakeExtension(int nid, const char* value, X509* issuer, X509* subject) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext) return EGRESSD_OPENSSL_ERROR(fmt::format("extension {} = {}", OBJ_nid2sn(nid), value));
  return ext;
}

}  // namespace egressd::ca
