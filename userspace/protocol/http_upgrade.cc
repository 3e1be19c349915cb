#include "userspace/protocol/http_upgrade.h"

#include <string_view>

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {
namespace {

std::vector<std::string_view> ListItems(std::string_view value) {
  std::vector<std::string_view> items;
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = TrimOws(value.substr(0, comma));
    if (!item.empty()) items.push_back(item);
    if (comma == std::string_view::npos) break;
    value = value.substr(comma + 1);
  }
  return items;
}

// Upgrade = #protocol, protocol = name [ "/" version ].
bool IsWebSocket(std::string_view protocol) {
  return EqualsIgnoreCase(protocol.substr(0, protocol.find('/')), "websocket");
}

std::string Join(const std::vector<std::string_view>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  return out;
}

}  // namespace

UpgradeFilter KeepOnlyWebSocketUpgrade(HeaderFields& fields) {
  UpgradeFilter result;
  std::string first_websocket;
  for (const auto& [name, value] : fields) {
    if (!EqualsIgnoreCase(name, "upgrade")) continue;
    std::vector<std::string_view> protocols = ListItems(value);
    // An empty field goes too, and a list with empty elements (", websocket")
    // is written again as its one protocol.
    if (protocols.size() != 1 || protocols.front() != value) result.changed = true;
    for (std::string_view protocol : protocols) {
      if (!IsWebSocket(protocol)) {
        result.changed = true;
      } else if (!result.websocket) {
        result.websocket = true;
        first_websocket = protocol;
      } else {
        result.changed = true;  // a second WebSocket token goes
      }
    }
  }
  if (!result.changed) return result;

  HeaderFields kept;
  bool upgrade_written = false;
  for (auto& [name, value] : fields) {
    if (EqualsIgnoreCase(name, "upgrade")) {
      if (!result.websocket || upgrade_written) continue;
      kept.emplace_back(std::move(name), first_websocket);
      upgrade_written = true;
      continue;
    }
    if (!result.websocket && EqualsIgnoreCase(name, "connection")) {
      // Nothing is upgraded any more: "upgrade" goes from the options.
      std::vector<std::string_view> options;
      bool removed = false;
      for (std::string_view option : ListItems(value)) {
        if (EqualsIgnoreCase(option, "upgrade")) {
          removed = true;
        } else {
          options.push_back(option);
        }
      }
      if (removed) {
        if (!options.empty()) kept.emplace_back(std::move(name), Join(options));
        continue;
      }
    }
    kept.emplace_back(std::move(name), std::move(value));
  }
  fields = std::move(kept);
  return result;
}

}  // namespace egressd::protocol
