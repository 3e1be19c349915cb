// The leaf key is a legacy EC_KEY on purpose (see leaf_minter.h): the
// deprecated EC_KEY calls are confined to this file.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "ca/leaf_minter.h"

#include <arpa/inet.h>
#include <openssl/ec.h>

#include <cstring>

#include "ca/openssl_util.h"

namespace egressd::ca {
namespace {

constexpr size_t kMaxCommonName = 64;
constexpr size_t kMaxHostName = 253;
constexpr size_t kMaxLabel = 63;

using EcKeyPtr = std::unique_ptr<EC_KEY, OpensslDeleter<EC_KEY, EC_KEY_free>>;

// The address of an IP literal ("1.2.3.4", "::1", "[::1]"), or empty.
std::string IpLiteralBytes(std::string_view name) {
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  if (name.empty() || name.size() >= INET6_ADDRSTRLEN) return {};
  char text[INET6_ADDRSTRLEN] = {};
  memcpy(text, name.data(), name.size());
  unsigned char bytes[16];
  if (inet_pton(AF_INET, text, bytes) == 1) return std::string(reinterpret_cast<char*>(bytes), 4);
  if (inet_pton(AF_INET6, text, bytes) == 1) return std::string(reinterpret_cast<char*>(bytes), 16);
  return {};
}

std::string IpText(const std::string& bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(bytes.size() == 4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof text);
  return text;
}

// subjectAltName: one dNSName or one iPAddress.
Status AddSubjectAltName(X509* cert, const std::string& name, const std::string& ip,
                         bool critical) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* gen = GENERAL_NAME_new();
  if (!names || !gen) {
    GENERAL_NAME_free(gen);
    return EGRESSD_OPENSSL_ERROR("subjectAltName");
  }
  if (!ip.empty()) {
    ASN1_OCTET_STRING* address = ASN1_OCTET_STRING_new();
    if (!address ||
        ASN1_OCTET_STRING_set(address, reinterpret_cast<const unsigned char*>(ip.data()),
                              static_cast<int>(ip.size())) != 1) {
      ASN1_OCTET_STRING_free(address);
      GENERAL_NAME_free(gen);
      return EGRESSD_OPENSSL_ERROR("subjectAltName");
    }
    GENERAL_NAME_set0_value(gen, GEN_IPADD, address);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (!dns || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(gen);
      return EGRESSD_OPENSSL_ERROR("subjectAltName");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), gen) <= 0) {
    GENERAL_NAME_free(gen);
    return EGRESSD_OPENSSL_ERROR("subjectAltName");
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), critical ? 1 : 0,
                        X509V3_ADD_DEFAULT) != 1)
    return EGRESSD_OPENSSL_ERROR("subjectAltName");
  return {};
}

}  // namespace

StatusOr<std::string> LeafMinter::CanonicalName(std::string_view name) {
  std::string ip = IpLiteralBytes(name);
  if (!ip.empty()) return IpText(ip);
  std::string host;
  host.reserve(name.size());
  for (char c : name) host += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > kMaxHostName)
    return EGRESSD_ERROR("no certificate for a name of {} characters", host.size());
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return EGRESSD_ERROR("no certificate for \"{}\": empty label", host);
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    // Not quoting the name: it may hold anything.
    if (!ok) return EGRESSD_ERROR("no certificate for a name with the character 0x{:02x}", c);
    if (++label > kMaxLabel)
      return EGRESSD_ERROR("no certificate for \"{}\": label too long", host);
  }
  if (label == 0) return EGRESSD_ERROR("no certificate for \"{}\": empty label", host);
  return host;
}

StatusOr<std::shared_ptr<const LeafMinter>> LeafMinter::Create(
    std::shared_ptr<const SandboxCa> ca) {
  std::shared_ptr<LeafMinter> minter(new LeafMinter());
  minter->ca_ = std::move(ca);
  EcKeyPtr ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || EC_KEY_generate_key(ec.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("generating the leaf key");
  minter->leaf_key_.reset(EVP_PKEY_new());
  if (!minter->leaf_key_ || EVP_PKEY_set1_EC_KEY(minter->leaf_key_.get(), ec.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("generating the leaf key");
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  for (const auto& [nid, value] : extensions) {
    auto ext = MakeExtension(nid, value, minter->ca_->cert(), nullptr);
    if (!ext.ok()) return ext.status();
    minter->common_exts_.push_back(std::move(*ext));
  }
  return std::shared_ptr<const LeafMinter>(std::move(minter));
}

StatusOr<std::shared_ptr<const Leaf>> LeafMinter::Mint(std::string_view requested,
                                                       time_t now) const {
  auto name = CanonicalName(requested);
  if (!name.ok()) return name.status();
  const std::string ip = IpLiteralBytes(*name);
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1)
    return EGRESSD_OPENSSL_ERROR("new leaf certificate");
  EGRESSD_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  EGRESSD_RETURN_IF_ERROR(SetValidity(cert.get(), now, kBackdateSeconds, kValiditySeconds));
  const ASN1_TIME* ca_end = X509_get0_notAfter(ca_->cert());
  if (ASN1_TIME_compare(X509_get0_notAfter(cert.get()), ca_end) > 0 &&
      X509_set1_notAfter(cert.get(), ca_end) != 1)
    return EGRESSD_OPENSSL_ERROR("leaf validity");
  const bool has_cn = name->size() <= kMaxCommonName;
  // By NID: "CN" would be looked up in OpenSSL's object table on every mint.
  if (has_cn && X509_NAME_add_entry_by_NID(
                    X509_get_subject_name(cert.get()), NID_commonName, MBSTRING_ASC,
                    reinterpret_cast<const unsigned char*>(name->c_str()), -1, -1, 0) != 1)
    return EGRESSD_OPENSSL_ERROR("leaf subject");
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_->cert())) != 1 ||
      X509_set_pubkey(cert.get(), leaf_key_.get()) != 1)
    return EGRESSD_OPENSSL_ERROR("leaf issuer and key");
  for (const auto& ext : common_exts_)
    if (X509_add_ext(cert.get(), ext.get(), -1) != 1)
      return EGRESSD_OPENSSL_ERROR("adding a leaf extension");
  EGRESSD_RETURN_IF_ERROR(AddSubjectAltName(cert.get(), *name, ip, !has_cn));
  if (X509_sign(cert.get(), ca_->key(), EVP_sha256()) <= 0)
    return EGRESSD_OPENSSL_ERROR("signing the leaf");
  EVP_PKEY_up_ref(leaf_key_.get());
  EvpPkeyPtr key(leaf_key_.get());
  return std::make_shared<const Leaf>(std::move(cert), std::move(key), std::move(*name),
                                      now + kValiditySeconds / 2);
}

}  // namespace egressd::ca
