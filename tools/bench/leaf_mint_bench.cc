// How long the proxy waits for a leaf certificate: minting one for a name
// never seen (LeafMinter, the sandbox's legacy EC_KEY), a cache hit
// (LeafCache), and, for comparison, the path not taken: a fresh
// provider-native key per leaf, set with X509_set_pubkey. Single thread.
//
//   build/tools/leaf_mint_bench [COUNT]        (COUNT mints per row, default 2000)
//
// Record the figures in docs/benchmarks.md.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ca/leaf_cache.h"
#include "ca/leaf_minter.h"
#include "ca/sandbox_ca.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double MicrosPerCall(int count, F&& f) {
  auto start = Clock::now();
  for (int i = 0; i < count; ++i) f(i);
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / count;
}

void Fail(const std::string& what) {
  fprintf(stderr, "leaf_mint_bench: %s\n", what.c_str());
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace egressd::ca;
  const int count = argc > 1 ? atoi(argv[1]) : 2000;
  if (count <= 0) Fail("usage: leaf_mint_bench [COUNT]");
  auto ca = SandboxCa::Create("bench");
  if (!ca.ok()) Fail(ca.status().ToString());
  auto minter = LeafMinter::Create(*ca);
  if (!minter.ok()) Fail(minter.status().ToString());
  auto cache = LeafCache::Create(*ca);
  if (!cache.ok()) Fail(cache.status().ToString());

  double mint = MicrosPerCall(count, [&](int i) {
    auto leaf = (*minter)->Mint("host" + std::to_string(i) + ".example.com");
    if (!leaf.ok()) Fail(leaf.status().ToString());
  });
  (*cache)->Get("hit.example.com");
  double hit = MicrosPerCall(count, [&](int) {
    auto leaf = (*cache)->Get("hit.example.com");
    if (!leaf.ok()) Fail(leaf.status().ToString());
  });
  // The path not taken: what a leaf costs when it carries a key of its own
  // (provider-native, OpenSSL 3's default), generated and encoded per leaf.
  double provider_key = MicrosPerCall(count, [&](int) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    if (!key || !cert || X509_set_pubkey(cert, key) != 1) Fail("provider key");
    X509_free(cert);
    EVP_PKEY_free(key);
  });
  double provider_set = 0;
  {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    provider_set = MicrosPerCall(count, [&](int) {
      X509* cert = X509_new();
      if (!key || !cert || X509_set_pubkey(cert, key) != 1) Fail("provider key");
      X509_free(cert);
    });
    EVP_PKEY_free(key);
  }
  printf("| leaf certificate | µs per leaf |\n|---|---|\n");
  printf("| minted, name never seen (LeafMinter::Mint, shared legacy EC_KEY) | %.1f |\n", mint);
  printf("| cache hit (LeafCache::Get) | %.2f |\n", hit);
  printf(
      "| not taken: a provider key per leaf, generated + X509_set_pubkey (key part only) | %.1f "
      "|\n",
      provider_key);
  printf("| not taken: X509_set_pubkey of a provider key alone | %.1f |\n", provider_set);
  return 0;
}
