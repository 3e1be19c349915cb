// What a request may upgrade to through the proxy: WebSocket only. Any other
// protocol named in Upgrade (h2c, TLS/1.0, ...) would turn the connection
// into a stream the proxy no longer inspects, so it is removed from the
// request head before the head is forwarded.
#pragma once

#include <string>
#include <string_view>

namespace egressd::protocol {

struct UpgradeFilter {
  bool websocket = false;  // "websocket" is among the Upgrade tokens, and stays
  bool changed = false;    // other tokens were removed: forward `head` instead
  // The head to forward when changed: the Upgrade field keeps only
  // "websocket" (or goes, and so does the "upgrade" option of Connection);
  // every other line is as received. Never longer than the original head.
  std::string head;
};

// raw_head: a complete request head as HttpRequestStream accepted it (start
// line, header lines, blank line; CRLF line ends, no obs-fold).
UpgradeFilter KeepOnlyWebSocketUpgrade(std::string_view raw_head);

}  // namespace egressd::protocol
