// What a request may upgrade to through the proxy: WebSocket only. Any other
// protocol named in Upgrade (h2c, TLS/1.0, ...) would turn the connection
// into a stream the proxy no longer inspects, so it is removed from the
// request's header fields before the head is forwarded.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol {

using HeaderFields = std::vector<std::pair<std::string, std::string>>;

struct UpgradeFilter {
  bool websocket = false;  // "websocket" is among the Upgrade tokens, and stays
  bool changed = false;    // other tokens were removed from `fields`
};

// Edits `fields` (a request's header fields, in order, values OWS-trimmed):
// one Upgrade field stays where the first was, with the first WebSocket token
// only (or none, and then the "upgrade" option of Connection goes too).
UpgradeFilter KeepOnlyWebSocketUpgrade(HeaderFields& fields);

}  // namespace egressd::protocol
