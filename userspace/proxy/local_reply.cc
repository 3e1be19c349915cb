#include "userspace/proxy/local_reply.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace egressd::proxy {

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 414:
      return "URI Too Long";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

std::string FormatLocalReply(const LocalReply& reply, const ReplyAudience& audience) {
  const char* code = ReplyReasonCode(reply.reason);
  int status = reply.status;
  std::string content_type;
  std::string body;
  if (audience.deny_response && IsPolicyDeny(reply.reason)) {
    status = audience.deny_response->status;
    content_type = audience.deny_response->content_type;
    body = policy::ExpandDenyBody(*audience.deny_response, {.reason = code,
                                                            .host = audience.host,
                                                            .policy = audience.policy,
                                                            .rule = reply.rule,
                                                            .event = reply.event,
                                                            .message = reply.message});
  } else if (audience.prefers_json) {
    content_type = "application/json";
    nlohmann::json j = {{"reason", code},          {"status", status},
                        {"host", audience.host},   {"policy", audience.policy},
                        {"rule", reply.rule},      {"event", reply.event},
                        {"message", reply.message}};
    body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else {
    content_type = "text/plain; charset=utf-8";
    body = "egressd: " + reply.message;
    if (reply.event != 0) body += fmt::format(" (event {})", reply.event);
    body += "\n";
  }
  std::string event_header =
      reply.event != 0 ? fmt::format("X-Egressd-Event: {}\r\n", reply.event) : "";
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n"
      "X-Egressd-Policy: {}\r\nX-Egressd-Reason: {}\r\n{}\r\n{}",
      status, StatusText(status), content_type, body.size(), audience.policy, code, event_header,
      body);
}

}  // namespace egressd::proxy
