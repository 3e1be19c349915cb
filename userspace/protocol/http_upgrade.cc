#include "userspace/protocol/http_upgrade.h"

#include <vector>

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {
namespace {

struct HeaderLine {
  std::string_view line;    // without CRLF
  std::string_view prefix;  // name, ':' and the OWS before the value
  std::string_view name;
  std::string_view value;  // OWS trimmed
};

HeaderLine SplitHeaderLine(std::string_view line) {
  HeaderLine h{line, line, line, {}};
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return h;  // not reached for accepted heads
  h.name = line.substr(0, colon);
  h.value = TrimOws(line.substr(colon + 1));
  size_t value_start = colon + 1;
  while (value_start < line.size() && (line[value_start] == ' ' || line[value_start] == '\t'))
    ++value_start;
  h.prefix = line.substr(0, value_start);
  return h;
}

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

std::string JoinLine(std::string_view prefix, const std::vector<std::string_view>& items,
                     std::string_view sep) {
  std::string out(prefix);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

// The head without the tokens that go; list items joined by `sep`.
std::string Rebuild(std::string_view start_line, const std::vector<HeaderLine>& headers,
                    bool websocket, std::string_view sep) {
  std::string out(start_line);
  out += "\r\n";
  // One Upgrade field, where the first was, with the first WebSocket token.
  std::vector<std::string_view> upgrade;
  for (const HeaderLine& h : headers) {
    if (!EqualsIgnoreCase(h.name, "upgrade")) continue;
    for (std::string_view protocol : ListItems(h.value))
      if (IsWebSocket(protocol) && upgrade.empty()) upgrade.push_back(protocol);
  }
  bool upgrade_written = false;
  for (const HeaderLine& h : headers) {
    if (EqualsIgnoreCase(h.name, "upgrade")) {
      if (!websocket || upgrade_written) continue;
      out += JoinLine(h.prefix, upgrade, sep);
      out += "\r\n";
      upgrade_written = true;
      continue;
    }
    if (!websocket && EqualsIgnoreCase(h.name, "connection")) {
      // Nothing is upgraded any more: "upgrade" goes from the options.
      std::vector<std::string_view> kept;
      bool removed = false;
      for (std::string_view option : ListItems(h.value)) {
        if (EqualsIgnoreCase(option, "upgrade")) {
          removed = true;
        } else {
          kept.push_back(option);
        }
      }
      if (removed) {
        if (!kept.empty()) out += JoinLine(h.prefix, kept, sep) + "\r\n";
        continue;
      }
    }
    out += h.line;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace

UpgradeFilter KeepOnlyWebSocketUpgrade(std::string_view raw_head) {
  UpgradeFilter result;
  // Empty lines before the start line (tolerated by the parser) stay as they are.
  size_t lead = 0;
  while (raw_head.substr(lead, 2) == "\r\n") lead += 2;
  // Start line, header lines, then the empty line.
  std::vector<std::string_view> lines;
  std::string_view rest = raw_head.substr(lead);
  while (!rest.empty()) {
    size_t crlf = rest.find("\r\n");
    if (crlf == std::string_view::npos) break;  // not reached for accepted heads
    lines.push_back(rest.substr(0, crlf));
    rest = rest.substr(crlf + 2);
    if (lines.back().empty()) break;
  }
  if (lines.size() < 2 || !lines.back().empty()) return result;

  std::vector<HeaderLine> headers;
  for (size_t i = 1; i + 1 < lines.size(); ++i) headers.push_back(SplitHeaderLine(lines[i]));
  for (const HeaderLine& h : headers) {
    if (!EqualsIgnoreCase(h.name, "upgrade")) continue;
    std::vector<std::string_view> protocols = ListItems(h.value);
    if (protocols.empty()) result.changed = true;  // an empty field goes too
    for (std::string_view protocol : protocols) {
      if (IsWebSocket(protocol)) {
        result.websocket = true;
      } else {
        result.changed = true;
      }
    }
  }
  if (!result.changed) return result;

  // At least one token goes, so joined by "," (never more separator bytes
  // than the original lists had) the head is never longer than it was.
  result.head = Rebuild(lines[0], headers, result.websocket, ", ");
  if (result.head.size() + lead > raw_head.size()) {
    result.head = Rebuild(lines[0], headers, result.websocket, ",");
  }
  result.head.insert(0, raw_head.substr(0, lead));
  return result;
}

}  // namespace egressd::protocol
