#include "userspace/protocol/http_head_writer.h"

namespace egressd::protocol {

std::string SerializeRequestHead(const HttpRequestHead& head) {
  std::string out;
  out.reserve(64 + head.target.size() + head.headers.size() * 32);
  out += head.method;
  out += ' ';
  out += head.target;
  out += " HTTP/";
  out += static_cast<char>('0' + head.version_major);
  out += '.';
  out += static_cast<char>('0' + head.version_minor);
  out += "\r\n";
  for (const auto& [name, value] : head.headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace egressd::protocol
