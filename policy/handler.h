// Named handlers: what a policy (or an operator, at runtime) binds to hosts
// to decide and change requests. A handler is an ordered list of steps; the
// first step that refuses ends the request. Values are templates
// (policy/template.h) expanded per request.
//
//   handlers:
//     github-auth:
//       - set_header: {name: Authorization, value: "Bearer {{secret:github_token}}"}
//     allow-hosts:
//       - allow_hosts: "{{params.hostnames}}"
//   by_host:
//     "api.github.com": github-auth
//   catch_all: {handler: allow-hosts, params: {hostnames: ["github.com"]}}
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "policy/template.h"

namespace egressd::policy {

enum class StepKind {
  // Host-level: decided by the host alone, so they also decide pass-through
  // TLS by SNI and DNS names.
  kAllowHosts,  // refuses unless the host matches one of the globs
  kDenyHosts,   // refuses when the host matches one of the globs
  kDeny,        // refuses every request
  // Request-level: they need to see requests (TLS to the host is intercepted).
  kAllowMethods,  // refuses unless the method is listed (exact, case-sensitive)
  kAllowPaths,    // refuses unless the path (query ignored) matches a path glob
  kSetHeader,     // replaces every field of that name with one
  kRemoveHeader,  // removes every field of that name
  kSetQuery,      // replaces (or adds) one query parameter
  kBasicAuth,     // sets Authorization: Basic base64(user:password)
};

// An HTTP field name or method: an RFC 9110 token (1*tchar).
bool IsHeaderToken(std::string_view name);
// Fields egressd manages (framing, routing, hop-by-hop), which a handler may
// neither set nor remove: Host, Content-Length, Transfer-Encoding,
// Connection, Keep-Alive, Upgrade, TE, Trailer, Proxy-* (any case).
bool IsManagedHeader(std::string_view name);

// "allow_hosts", "set_header", ...: as written in a policy.
const char* StepKindName(StepKind kind);
bool IsRequestLevel(StepKind kind);

struct Step {
  StepKind kind = StepKind::kDeny;
  int line = 0;  // in the policy file; 0 when not loaded from one
  // allow_hosts, deny_hosts, allow_methods, allow_paths: the entries. An
  // entry that is exactly "{{params.NAME}}" stands for every string of that
  // parameter when it is a list.
  std::vector<Template> entries;
  std::string name;   // set_header, remove_header: a header name; set_query: a parameter name
  Template value;     // set_header, set_query: the value; basic_auth: the user
  Template password;  // basic_auth
  int status = 403;   // the status of a refusal by this step (deny, allow_*, deny_hosts)
  std::string body;   // deny: the reply's body ("" = a default naming the handler)
};

struct Handler {
  std::string name;
  std::vector<Step> steps;
  // Some step needs to see requests (IsRequestLevel).
  bool needs_requests() const;
  // Some template names a secret: what it adds is a credential.
  bool uses_secrets() const;
};

// A parameter of a binding: a string or a list of strings.
using ParamValue = std::variant<std::string, std::vector<std::string>>;
using Params = std::map<std::string, ParamValue>;

// "allow-hosts" or {handler: allow-hosts, params: {...}}.
struct HandlerBinding {
  std::string handler;
  Params params;
  bool operator==(const HandlerBinding&) const = default;
};

// A by_host entry: a host glob (normalized) bound to a handler.
struct HostBinding {
  std::string host;
  HandlerBinding binding;
  bool operator==(const HostBinding&) const = default;
};

// Why `binding` cannot be used with `handlers` ("" when it can): the handler
// is not defined, a {{params.NAME}} it uses is not given, or is a string
// where the step needs a list (or a list inside a header value).
std::string CheckBinding(const std::map<std::string, Handler>& handlers,
                         const HandlerBinding& binding);

}  // namespace egressd::policy
