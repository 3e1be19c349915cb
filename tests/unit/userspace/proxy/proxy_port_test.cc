#include "userspace/proxy/proxy_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "userspace/common/loopback_socket.h"
#include "userspace/common/unique_fd.h"

namespace egressd::proxy {
namespace {

TEST(ProxyPort, ReservedOnBothLoopbacksAndJoinableByTheWorkers) {
  auto r = ReserveProxyPort();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->port, 0);
  EXPECT_EQ(LocalPort(r->v4.get()), r->port);
  EXPECT_EQ(LocalPort(r->v6.get()), r->port);
  // Another process's socket (no SO_REUSEPORT) cannot take it meanwhile...
  auto stranger = BindLoopback(AF_INET, SOCK_STREAM, r->port);
  EXPECT_FALSE(stranger.ok());
  if (stranger.ok()) close(*stranger);
  // ...while a worker's listener (SO_REUSEPORT, same user) joins it.
  for (int family : {AF_INET, AF_INET6}) {
    auto worker = BindLoopback(family, SOCK_STREAM, r->port, /*reuse_port=*/true);
    ASSERT_TRUE(worker.ok()) << worker.status().ToString();
    close(*worker);
  }
}

// What the proxy accepts has TCP_NODELAY from the listener: nothing small
// the proxy relays waits behind Nagle for the peer's delayed ACK.
TEST(ProxyPort, AcceptedConnectionsInheritTcpNodelay) {
  for (int family : {AF_INET, AF_INET6}) {
    auto listener = BindLoopback(family, SOCK_STREAM, 0, /*reuse_port=*/true);
    ASSERT_TRUE(listener.ok()) << listener.status().ToString();
    UniqueFd listening(*listener);
    UniqueFd client(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ASSERT_EQ(getsockname(listening.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
    ASSERT_EQ(connect(client.get(), reinterpret_cast<sockaddr*>(&ss), len), 0);
    UniqueFd accepted(accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.valid());
    int nodelay = 0;
    socklen_t size = sizeof(nodelay);
    ASSERT_EQ(getsockopt(accepted.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &size), 0);
    EXPECT_EQ(nodelay, 1) << (family == AF_INET ? "IPv4" : "IPv6");
  }
}

}  // namespace
}  // namespace egressd::proxy
