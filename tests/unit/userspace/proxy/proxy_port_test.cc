#include "userspace/proxy/proxy_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "userspace/common/loopback_socket.h"

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

}  // namespace
}  // namespace egressd::proxy
