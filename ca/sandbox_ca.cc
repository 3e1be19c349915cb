#include "ca/sandbox_ca.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "ca/openssl_util.h"
#include "userspace/common/openssl_errors.h"

namespace egressd::ca {
namespace {

constexpr const char* kCurve = "P-256";

// "egressd sandbox CA (<instance>)" within the 64 characters of a CN, with
// anything but printable ASCII of the instance name replaced by '_'.
std::string CaCommonName(std::string_view instance) {
  constexpr std::string_view kPrefix = "egressd sandbox CA (";
  constexpr size_t kMaxCn = 64;
  std::string name;
  for (char c : instance.substr(0, kMaxCn - kPrefix.size() - 1))
    name += (c >= 0x20 && c < 0x7f) ? c : '_';
  return std::string(kPrefix) + name + ")";
}

bool IsP256(EVP_PKEY* key) {
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &len) == 1 &&
         std::string_view(group, len) == "prime256v1";
}

// OpenSSL asks a terminal for the password of an encrypted key unless told
// not to: ours are never encrypted, so an encrypted one is an error.
int NoPassword(char*, int, int, void*) {
  return -1;
}

}  // namespace

StatusOr<std::shared_ptr<const SandboxCa>> SandboxCa::Create(std::string_view instance,
                                                             time_t now) {
  EvpPkeyPtr key(EVP_EC_gen(kCurve));
  if (!key) return EGRESSD_OPENSSL_ERROR("generating the CA key");
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return EGRESSD_OPENSSL_ERROR("new CA certificate");
  EGRESSD_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  EGRESSD_RETURN_IF_ERROR(SetValidity(cert.get(), now, kBackdateSeconds, kValiditySeconds));
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn = CaCommonName(instance);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("egressd"), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("CA subject and key");
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& [nid, value] : extensions) {
    auto ext = MakeExtension(nid, value, cert.get(), cert.get());
    if (!ext.ok()) return ext.status();
    if (X509_add_ext(cert.get(), ext->get(), -1) != 1)
      return EGRESSD_OPENSSL_ERROR("adding a CA extension");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    return EGRESSD_OPENSSL_ERROR("self-signing the CA");
  auto pem = CertificatePem(cert.get());
  if (!pem.ok()) return pem.status();
  return std::shared_ptr<const SandboxCa>(
      new SandboxCa(std::move(cert), std::move(key), std::move(*pem)));
}

StatusOr<std::shared_ptr<const SandboxCa>> SandboxCa::FromPem(std::string_view cert_pem,
                                                              std::string_view key_pem) {
  BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (!cert_bio || !key_bio) return EGRESSD_OPENSSL_ERROR("reading the CA");
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassword, nullptr));
  if (!cert) return EGRESSD_OPENSSL_ERROR("the CA certificate is not a PEM certificate");
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassword, nullptr));
  if (!key) return EGRESSD_OPENSSL_ERROR("the CA key is not an unencrypted PEM private key");
  if (!IsP256(key.get())) {
    TakeOpensslErrors();
    return EGRESSD_ERROR("the CA key is not an EC P-256 key");
  }
  if (X509_check_ca(cert.get()) != 1) {
    TakeOpensslErrors();
    return EGRESSD_ERROR("the CA certificate is not a CA (basicConstraints CA:TRUE)");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("the CA key does not match its certificate");
  auto pem = CertificatePem(cert.get());
  if (!pem.ok()) return pem.status();
  return std::shared_ptr<const SandboxCa>(
      new SandboxCa(std::move(cert), std::move(key), std::move(*pem)));
}

StatusOr<std::string> SandboxCa::PrivateKeyPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return EGRESSD_OPENSSL_ERROR("writing the CA key as PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace egressd::ca
