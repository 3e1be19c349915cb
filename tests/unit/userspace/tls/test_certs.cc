#include "tests/unit/userspace/tls/test_certs.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace egressd::tls::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "test_certs: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

EvpPkeyPtr MakeKey(KeyKind kind) {
  EVP_PKEY* key = nullptr;
  switch (kind) {
    case KeyKind::kEcP256:
      key = EVP_EC_gen("P-256");
      break;
    case KeyKind::kRsa1024:
      key = EVP_RSA_gen(1024);
      break;
    case KeyKind::kRsa2048:
      key = EVP_RSA_gen(2048);
      break;
  }
  if (!key) Die("key generation");
  return EvpPkeyPtr(key);
}

void AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (!ext || X509_add_ext(cert, ext, -1) != 1) Die("extension");
  X509_EXTENSION_free(ext);
}

}  // namespace

KeyCert MakeCert(const CertSpec& spec, const KeyCert* issuer) {
  KeyCert out;
  out.key = MakeKey(spec.key);
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  static long serial = 1000;
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), spec.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert), spec.not_after);
  X509_set_pubkey(cert, out.key.get());
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->cert.get() : cert;
  EVP_PKEY* issuer_key = issuer ? issuer->key.get() : out.key.get();
  X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert));

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert, cert, nullptr, nullptr, 0);
  AddExt(cert, &ctx, NID_subject_key_identifier, "hash");
  if (issuer) AddExt(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  if (spec.ca) {
    AddExt(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(cert, &ctx, NID_key_usage,
           spec.key == KeyKind::kEcP256 ? "critical,digitalSignature"
                                        : "critical,digitalSignature,keyEncipherment");
    if (spec.eku == Eku::kServerAuth) AddExt(cert, &ctx, NID_ext_key_usage, "serverAuth");
    if (spec.eku == Eku::kClientAuth) AddExt(cert, &ctx, NID_ext_key_usage, "clientAuth");
  }
  std::string san;
  for (const auto& d : spec.dns) san += (san.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& ip : spec.ips) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  if (!san.empty()) AddExt(cert, &ctx, NID_subject_alt_name, san);

  if (X509_sign(cert, issuer_key, spec.md ? spec.md : EVP_sha256()) <= 0) Die("X509_sign");
  return out;
}

KeyCert MakeRoot(const std::string& cn) {
  CertSpec spec;
  spec.cn = cn;
  spec.ca = true;
  spec.not_after = 10 * 86400;
  return MakeCert(spec, nullptr);
}

KeyCert MakeLeaf(const KeyCert& issuer, const std::string& dns) {
  CertSpec spec;
  spec.cn = dns;
  spec.dns = {dns};
  return MakeCert(spec, &issuer);
}

std::string Pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_X509(bio, cert) != 1) Die("PEM_write_bio_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

TempFile::TempFile(const std::string& contents) {
  char path[] = "/tmp/egressd-tls-test-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) Die("mkstemp");
  if (write(fd, contents.data(), contents.size()) != static_cast<ssize_t>(contents.size())) {
    Die("write");
  }
  close(fd);
  path_ = path;
}

TempFile::~TempFile() {
  unlink(path_.c_str());
}

SslCtxPtr MakeTestServerCtx(const KeyCert& leaf, const TestServerOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) Die("SSL_CTX_new");
  SSL_CTX_set_security_level(ctx.get(), 0);
  if (SSL_CTX_set_cipher_list(ctx.get(), "DEFAULT:@SECLEVEL=0") != 1) Die("cipher list");
  if (options.min_version) SSL_CTX_set_min_proto_version(ctx.get(), options.min_version);
  if (options.max_version) SSL_CTX_set_max_proto_version(ctx.get(), options.max_version);
  if (SSL_CTX_use_certificate(ctx.get(), leaf.cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), leaf.key.get()) != 1) {
    Die("server certificate");
  }
  for (X509* c : options.chain) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), c) != 1) Die("chain certificate");
  }
  return ctx;
}

SslCtxPtr MakeTestClientCtx(int max_version) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) Die("SSL_CTX_new");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (max_version) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  return ctx;
}

}  // namespace egressd::tls::testing
