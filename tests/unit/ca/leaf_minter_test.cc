#include "ca/leaf_minter.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <vector>

#include "tests/unit/ca/ca_test_util.h"

namespace egressd::ca {
namespace {

using testing::VerifyLeaf;

struct Sandbox {
  std::shared_ptr<const SandboxCa> ca;
  std::shared_ptr<const LeafMinter> minter;
};

Sandbox NewSandbox(const std::string& instance = "job") {
  auto ca = SandboxCa::Create(instance);
  EXPECT_TRUE(ca.ok()) << ca.status().ToString();
  auto minter = LeafMinter::Create(*ca);
  EXPECT_TRUE(minter.ok()) << minter.status().ToString();
  return {*ca, *minter};
}

std::shared_ptr<const Leaf> MustMint(const Sandbox& sb, const std::string& name) {
  auto leaf = sb.minter->Mint(name);
  EXPECT_TRUE(leaf.ok()) << name << ": " << leaf.status().ToString();
  return leaf.ok() ? *leaf : nullptr;
}

GENERAL_NAMES* SubjectAltNames(X509* cert, int* critical) {
  return static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, critical, nullptr));
}

TEST(LeafMinter, LeafForADnsNameVerifiesUnderItsCa) {
  auto sb = NewSandbox();
  ERR_clear_error();
  auto leaf = MustMint(sb, "api.github.com");
  ASSERT_NE(leaf, nullptr);
  // A proxy worker mints: nothing may be left for its next SSL_get_error.
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_EQ(VerifyLeaf(leaf->cert(), sb.ca->cert(), "api.github.com", false), "");
  // Exactly that name: no wildcard, no parent, no sibling.
  EXPECT_NE(VerifyLeaf(leaf->cert(), sb.ca->cert(), "github.com", false), "");
  EXPECT_NE(VerifyLeaf(leaf->cert(), sb.ca->cert(), "x.api.github.com", false), "");
  EXPECT_NE(VerifyLeaf(leaf->cert(), sb.ca->cert(), "gist.github.com", false), "");
  EXPECT_EQ(X509_check_host(leaf->cert(), "API.GitHub.com", 0, 0, nullptr), 1);
}

TEST(LeafMinter, SubjectAltNameIsDnsForNamesAndIpForAddresses) {
  auto sb = NewSandbox();
  struct Case {
    std::string name;
    int type;
    std::string check;  // what a client verifies
    bool ip;
  } cases[] = {
      {"example.com", GEN_DNS, "example.com", false},
      {"127.0.0.1", GEN_IPADD, "127.0.0.1", true},
      {"::1", GEN_IPADD, "::1", true},
      {"[fe80::1]", GEN_IPADD, "fe80::1", true},
  };
  for (const auto& c : cases) {
    auto leaf = MustMint(sb, c.name);
    ASSERT_NE(leaf, nullptr);
    int critical = -1;
    GENERAL_NAMES* names = SubjectAltNames(leaf->cert(), &critical);
    ASSERT_NE(names, nullptr);
    ASSERT_EQ(sk_GENERAL_NAME_num(names), 1) << c.name;
    EXPECT_EQ(sk_GENERAL_NAME_value(names, 0)->type, c.type) << c.name;
    EXPECT_EQ(critical, 0);
    GENERAL_NAMES_free(names);
    EXPECT_EQ(VerifyLeaf(leaf->cert(), sb.ca->cert(), c.check, c.ip), "") << c.name;
  }
  // An address leaf does not pass for another address.
  auto leaf = MustMint(sb, "127.0.0.1");
  EXPECT_NE(VerifyLeaf(leaf->cert(), sb.ca->cert(), "127.0.0.2", true), "");
  EXPECT_EQ(X509_check_ip_asc(leaf->cert(), "127.0.0.1", 0), 1);
}

TEST(LeafMinter, ServerAuthOnlyNotACa) {
  auto sb = NewSandbox();
  auto leaf = MustMint(sb, "example.com");
  X509* cert = leaf->cert();
  uint32_t flags = X509_get_extension_flags(cert);
  EXPECT_FALSE(flags & EXFLAG_CA);
  EXPECT_EQ(X509_check_ca(cert), 0);
  EXPECT_EQ(X509_get_extended_key_usage(cert), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0), 0);
  // AKI is the CA's SKI.
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert);
  ASSERT_NE(aki, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(sb.ca->cert())), 0);
  // ECDSA P-256, and the key given with it is the certificate's.
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(X509_get0_pubkey(cert), group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_check_private_key(cert, leaf->key()), 1);
  EXPECT_EQ(X509_get0_serialNumber(cert)->length, 16);
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "example.com");
}

TEST(LeafMinter, ValidFromAnHourAgoForFourDays) {
  auto sb = NewSandbox();
  const time_t now = time(nullptr);
  auto leaf = sb.minter->Mint("example.com", now);
  ASSERT_TRUE(leaf.ok());
  X509* cert = (*leaf)->cert();
  EXPECT_LT(X509_cmp_time(X509_get0_notBefore(cert), nullptr), 0);  // in the past
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(cert)), 1);
  EXPECT_LE(secs, -3590);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)), 1);
  const long left = days * 86400L + secs;  // four days less the seconds this test took
  EXPECT_LE(left, 4 * 86400L);
  EXPECT_GT(left, 4 * 86400L - 60);
  EXPECT_EQ((*leaf)->refresh_at(), now + 2 * 86400);
}

TEST(LeafMinter, LeafOfOneSandboxIsNotTrustedByAnother) {
  auto a = NewSandbox("a");
  auto b = NewSandbox("b");
  auto leaf = MustMint(a, "example.com");
  EXPECT_EQ(VerifyLeaf(leaf->cert(), a.ca->cert(), "example.com", false), "");
  EXPECT_NE(VerifyLeaf(leaf->cert(), b.ca->cert(), "example.com", false), "");
}

TEST(LeafMinter, NamesAreCanonical) {
  EXPECT_EQ(*LeafMinter::CanonicalName("API.GitHub.COM"), "api.github.com");
  EXPECT_EQ(*LeafMinter::CanonicalName("example.com."), "example.com");
  EXPECT_EQ(*LeafMinter::CanonicalName("[::0001]"), "::1");
  EXPECT_EQ(*LeafMinter::CanonicalName("::FFFF:127.0.0.1"), "::ffff:127.0.0.1");
  EXPECT_EQ(*LeafMinter::CanonicalName("my_host.internal"), "my_host.internal");
  for (const std::string& bad : std::vector<std::string>{
           "", ".", "*.example.com", "a..b", ".a", "a b", std::string("a\0b", 3), "a/b", "host:443",
           std::string(64, 'a') + ".com",
           std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
               std::string(63, 'd')})
    EXPECT_FALSE(LeafMinter::CanonicalName(bad).ok()) << bad;
  EXPECT_FALSE(NewSandbox().minter->Mint("*.example.com").ok());
}

TEST(LeafMinter, NameLongerThanACommonNameHasOnlyItsSan) {
  auto sb = NewSandbox();
  std::string name = std::string(60, 'a') + "." + std::string(60, 'b') + ".example";
  auto leaf = MustMint(sb, name);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf->cert())), 0);
  int critical = 0;
  GENERAL_NAMES* names = SubjectAltNames(leaf->cert(), &critical);
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(critical, 1);  // RFC 5280: an empty subject makes the SAN critical
  GENERAL_NAMES_free(names);
  EXPECT_EQ(VerifyLeaf(leaf->cert(), sb.ca->cert(), name, false), "");
}

TEST(LeafMinter, LeavesShareTheSandboxKeyButNotSerials) {
  auto sb = NewSandbox();
  auto a = MustMint(sb, "a.example");
  auto b = MustMint(sb, "b.example");
  EXPECT_EQ(EVP_PKEY_eq(a->key(), b->key()), 1);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert()), X509_get0_serialNumber(b->cert())),
            0);
  // The leaf key is not the CA's.
  EXPECT_NE(EVP_PKEY_eq(a->key(), sb.ca->key()), 1);
}

TEST(LeafMinter, ALeafIsNotACaWhenReadBack) {
  auto sb = NewSandbox();
  auto leaf = MustMint(sb, "example.com");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, leaf->cert());
  PEM_write_bio_PrivateKey(bio, leaf->key(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, n);
  BIO_free(bio);
  auto got = SandboxCa::FromPem(pem, pem);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("not a CA"), std::string::npos) << got.status().message();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace egressd::ca
