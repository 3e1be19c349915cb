// deny_response: the status and body a policy gives its HTTP denies (a host,
// method, path or handler refused), for clients a fixed text body breaks:
//
//   deny_response:
//     status: 403                       # 400..599, default 403
//     content_type: application/json    # default text/plain; charset=utf-8
//     body: '{"error": "{{reason}}", "host": "{{host}}", "event": {{event}}}'
//
// Placeholders: {{reason}} (the stable reason code), {{host}}, {{policy}},
// {{rule}}, {{event}} (the audit event's seq, 0 when none was kept),
// {{message}} (the one-line explanation); spaces inside the braces are
// ignored. In a JSON content type the values
// are escaped for a JSON string. Upstream failures (502, 504) keep
// egressd's own replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace YAML {
class Node;
struct Mark;
}  // namespace YAML

namespace egressd::policy {

class YamlErrors;

inline constexpr size_t kMaxDenyResponseBody = 4096;

struct DenyResponse {
  int status = 403;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// What a deny's placeholders stand for.
struct DenyFacts {
  std::string_view reason;
  std::string_view host;
  std::string_view policy;
  std::string_view rule;
  uint64_t event = 0;
  std::string_view message;
};

// Loads the deny_response mapping; errors (with line and column) go to `errors`.
std::optional<DenyResponse> LoadDenyResponse(const YAML::Node& v, const YAML::Mark& at,
                                             YamlErrors& errors);

// The body with its placeholders replaced (JSON-escaped when the content type
// is JSON).
std::string ExpandDenyBody(const DenyResponse& response, const DenyFacts& facts);

}  // namespace egressd::policy
