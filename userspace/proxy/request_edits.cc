#include "userspace/proxy/request_edits.h"

#include <algorithm>
#include <cctype>

namespace egressd::proxy {
namespace {

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

void RemoveFields(protocol::HttpRequestHead& head, std::string_view name) {
  std::erase_if(head.headers, [&](const auto& field) { return SameName(field.first, name); });
}

// Where the path of an absolute-form target starts (its authority skipped).
size_t PathStart(std::string_view target) {
  if (target.empty() || target[0] == '/') return 0;
  size_t scheme = target.find("://");
  if (scheme == std::string_view::npos) return 0;
  size_t path = target.find_first_of("/?#", scheme + 3);
  return path == std::string_view::npos ? target.size() : path;
}

std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

std::string TargetPath(std::string_view target) {
  if (target == "*") return "*";
  size_t start = PathStart(target);
  std::string_view rest = target.substr(start);
  rest = rest.substr(0, rest.find_first_of("?#"));
  return rest.empty() ? "/" : std::string(rest);
}

std::string SetQueryParameter(std::string_view target, std::string_view name,
                              std::string_view value) {
  size_t fragment = target.find('#');
  std::string_view before = target.substr(0, fragment);
  size_t question = before.find('?', PathStart(target));
  std::string_view base = before.substr(0, question);
  std::string query;
  if (question != std::string_view::npos) {
    std::string_view params = before.substr(question + 1);
    std::string encoded_name = PercentEncode(name);
    while (!params.empty()) {
      size_t amp = params.find('&');
      std::string_view param = params.substr(0, amp);
      std::string_view key = param.substr(0, param.find('='));
      if (!param.empty() && key != name && key != encoded_name) {
        if (!query.empty()) query += '&';
        query += param;
      }
      if (amp == std::string_view::npos) break;
      params.remove_prefix(amp + 1);
    }
  }
  if (!query.empty()) query += '&';
  query += PercentEncode(name) + "=" + PercentEncode(value);
  std::string out(base);
  if (out.empty() || PathStart(target) == out.size()) out += out.empty() ? "" : "/";
  return out + "?" + query;
}

void ApplyRequestEdits(const std::vector<policy::RequestEdit>& edits,
                       protocol::HttpRequestHead& head) {
  for (const auto& edit : edits) {
    switch (edit.kind) {
      case policy::RequestEdit::Kind::kSetHeader:
        RemoveFields(head, edit.name);
        head.headers.emplace_back(edit.name, edit.value);
        break;
      case policy::RequestEdit::Kind::kRemoveHeader:
        RemoveFields(head, edit.name);
        break;
      case policy::RequestEdit::Kind::kSetQuery:
        head.target = SetQueryParameter(head.target, edit.name, edit.value);
        break;
    }
  }
}

bool HasDroppableConnectionClose(const protocol::HttpRequestHead& head) {
  if (head.version_major != 1 || head.version_minor != 1) return false;
  size_t count = 0;
  bool close = false;
  for (const auto& [name, value] : head.headers) {
    if (!SameName(name, "connection")) continue;
    count++;
    close = SameName(value, "close");
  }
  return count == 1 && close;
}

bool DropConnectionClose(protocol::HttpRequestHead& head) {
  if (!HasDroppableConnectionClose(head)) return false;
  RemoveFields(head, "connection");
  return true;
}

}  // namespace egressd::proxy
