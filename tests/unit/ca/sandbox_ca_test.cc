#include "ca/sandbox_ca.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace egressd::ca {
namespace {

std::shared_ptr<const SandboxCa> NewCa(const std::string& instance = "job-42") {
  auto ca = SandboxCa::Create(instance);
  EXPECT_TRUE(ca.ok()) << ca.status().ToString();
  return ca.ok() ? *ca : nullptr;
}

TEST(SandboxCa, IsACaThatSignsOnlyLeaves) {
  auto ca = NewCa();
  X509* cert = ca->cert();
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(cert), 1);
  uint32_t flags = X509_get_extension_flags(cert);
  EXPECT_TRUE(flags & EXFLAG_CA);
  EXPECT_TRUE(flags & EXFLAG_SS);  // self-signed
  EXPECT_EQ(X509_get_pathlen(cert), 0);
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  // basicConstraints and keyUsage are critical.
  int crit = 0;
  BASIC_CONSTRAINTS* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert, NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  ASN1_BIT_STRING* ku =
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(cert, NID_key_usage, &crit, nullptr));
  ASSERT_NE(ku, nullptr);
  EXPECT_EQ(crit, 1);
  ASN1_BIT_STRING_free(ku);
  EXPECT_NE(X509_get0_subject_key_id(cert), nullptr);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1);  // its self-signature
}

TEST(SandboxCa, KeyIsEcP256) {
  auto ca = NewCa();
  EVP_PKEY* key = X509_get0_pubkey(ca->cert());
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_check_private_key(ca->cert(), ca->key()), 1);
}

TEST(SandboxCa, SubjectNamesTheInstance) {
  auto ca = NewCa("job-42");
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca->cert()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "egressd sandbox CA (job-42)");
  char org[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(ca->cert()), NID_organizationName, org,
                            sizeof org);
  EXPECT_STREQ(org, "egressd");
}

TEST(SandboxCa, LongOrOddInstanceNamesStillMakeACa) {
  auto ca = NewCa(std::string(300, 'x') + "\n\xff");
  ASSERT_NE(ca, nullptr);
  char cn[128] = {};
  int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(ca->cert()), NID_commonName, cn, sizeof cn);
  EXPECT_EQ(n, 64);
  auto odd = NewCa("a\tb");
  X509_NAME_get_text_by_NID(X509_get_subject_name(odd->cert()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "egressd sandbox CA (a_b)");
}

TEST(SandboxCa, ValidFromAnHourAgoForTenYears) {
  const time_t now = time(nullptr);
  auto ca = SandboxCa::Create("job", now);
  ASSERT_TRUE(ca.ok());
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore((*ca)->cert())), 1);
  EXPECT_EQ(days, 0);
  EXPECT_LE(secs, -3590);  // in the past
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter((*ca)->cert())), 1);
  EXPECT_GE(days, 3649);
}

TEST(SandboxCa, EveryCaIsDifferent) {
  auto a = NewCa("same");
  auto b = NewCa("same");
  EXPECT_NE(a->cert_pem(), b->cert_pem());
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert()), X509_get0_serialNumber(b->cert())),
            0);
  EXPECT_NE(EVP_PKEY_eq(a->key(), b->key()), 1);
  // 128-bit serial.
  EXPECT_EQ(X509_get0_serialNumber(a->cert())->length, 16);
}

TEST(SandboxCa, PemRoundTripKeepsCertificateAndKey) {
  auto ca = NewCa();
  auto key = ca->PrivateKeyPem();
  ASSERT_TRUE(key.ok());
  EXPECT_NE(key->find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(ca->cert_pem().find("PRIVATE"), std::string::npos);  // the accessor never has the key
  auto back = SandboxCa::FromPem(ca->cert_pem(), *key);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ((*back)->cert_pem(), ca->cert_pem());
  EXPECT_EQ(EVP_PKEY_eq((*back)->key(), ca->key()), 1);
  EXPECT_EQ(ERR_peek_error(), 0u) << "nothing left on OpenSSL's error queue";
}

TEST(SandboxCa, GarbagePemIsACleanError) {
  auto ca = NewCa();
  auto key = ca->PrivateKeyPem();
  ASSERT_TRUE(key.ok());
  auto other = NewCa();
  auto other_key = other->PrivateKeyPem();
  struct Case {
    std::string cert, key, error;
  } cases[] = {
      {"", *key, "not a PEM certificate"},
      {"garbage", *key, "not a PEM certificate"},
      {ca->cert_pem().substr(0, ca->cert_pem().size() / 2), *key, "not a PEM certificate"},
      {ca->cert_pem(), "", "not an unencrypted PEM private key"},
      {ca->cert_pem(), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
       "not an unencrypted PEM private key"},
      {ca->cert_pem(), *other_key, "does not match"},
      {*key, ca->cert_pem(), "not a PEM certificate"},
  };
  for (const auto& c : cases) {
    auto got = SandboxCa::FromPem(c.cert, c.key);
    ASSERT_FALSE(got.ok());
    EXPECT_NE(got.status().message().find(c.error), std::string::npos) << got.status().message();
    EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL's error queue is left clean";
  }
}

}  // namespace
}  // namespace egressd::ca
