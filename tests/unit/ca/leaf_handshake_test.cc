// A leaf is what a TLS server needs: a real handshake over an in-memory BIO
// pair, the server using the leaf as the proxy will, the client trusting only
// the sandbox CA and checking the name, as a client inside the sandbox does.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ca/leaf_cache.h"

namespace egressd::ca {
namespace {

// Runs a handshake between a client that trusts `trusted` and checks `name`,
// and a server presenting `leaf`. Returns the client's verify result
// (X509_V_OK when it accepted), or -1 when the handshake did not finish.
long Handshake(const Leaf& leaf, X509* trusted, const std::string& name, int version) {
  SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(client_ctx.get(), version);
  SSL_CTX_set_max_proto_version(client_ctx.get(), version);
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.get()), trusted);
  SslPtr server(SSL_new(server_ctx.get()));
  SslPtr client(SSL_new(client_ctx.get()));
  // As the proxy will: the cached leaf's objects, referenced by the SSL.
  EXPECT_EQ(SSL_use_certificate(server.get(), leaf.cert()), 1);
  EXPECT_EQ(SSL_use_PrivateKey(server.get(), leaf.key()), 1);
  EXPECT_EQ(SSL_check_private_key(server.get()), 1);
  SSL_set_tlsext_host_name(client.get(), name.c_str());
  SSL_set1_host(client.get(), name.c_str());
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  bool client_done = false, server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) {
      int r = SSL_do_handshake(client.get());
      if (r == 1)
        client_done = true;
      else if (SSL_get_error(client.get(), r) != SSL_ERROR_WANT_READ)
        break;
    }
    if (!server_done) {
      int r = SSL_do_handshake(server.get());
      if (r == 1)
        server_done = true;
      else if (SSL_get_error(server.get(), r) != SSL_ERROR_WANT_READ)
        break;
    }
  }
  long verify = SSL_get_verify_result(client.get());
  ERR_clear_error();
  return client_done && server_done ? verify : (verify != X509_V_OK ? verify : -1);
}

std::shared_ptr<LeafCache> NewCache(const std::string& instance) {
  auto ca = SandboxCa::Create(instance);
  EXPECT_TRUE(ca.ok());
  auto cache = LeafCache::Create(*ca);
  EXPECT_TRUE(cache.ok());
  return *cache;
}

TEST(LeafHandshake, ClientTrustingTheSandboxCaAcceptsTheLeafInTls13And12) {
  auto cache = NewCache("job");
  auto leaf = cache->Get("api.example.com");
  ASSERT_TRUE(leaf.ok());
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION})
    EXPECT_EQ(Handshake(**leaf, cache->ca().cert(), "api.example.com", version), X509_V_OK)
        << version;
}

TEST(LeafHandshake, AnotherSandboxsClientRefusesIt) {
  auto mine = NewCache("mine");
  auto other = NewCache("other");
  auto leaf = mine->Get("api.example.com");
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(Handshake(**leaf, other->ca().cert(), "api.example.com", TLS1_3_VERSION),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST(LeafHandshake, ALeafForAnotherNameIsRefused) {
  auto cache = NewCache("job");
  auto leaf = cache->Get("a.example.com");
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(Handshake(**leaf, cache->ca().cert(), "b.example.com", TLS1_3_VERSION),
            X509_V_ERR_HOSTNAME_MISMATCH);
}

}  // namespace
}  // namespace egressd::ca
