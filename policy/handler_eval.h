// Running a handler's steps for one request (or, host-level steps only, for
// a TLS SNI or a DNS name). Pure: secrets come through SecretSource, the
// request as facts; the result is a verdict and the edits the proxy applies
// to the request head. Nothing here puts a secret value into a reason.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/handler.h"

namespace egressd::policy {

// A secret as the data path sees it: its value, or why there is none
// ("not set", "file is readable by group or others", ...).
struct SecretLookup {
  std::optional<std::string> value;
  std::string problem;
};

// The secrets of one instance (its own first, then the shared ones).
class SecretSource {
 public:
  virtual ~SecretSource() = default;
  virtual SecretLookup Find(std::string_view name) const = 0;
};

struct TemplateContext {
  std::string_view instance;
  const Params* params = nullptr;         // the binding's; null = none
  const SecretSource* secrets = nullptr;  // null = every secret missing
};

struct RequestFacts {
  std::string_view host;    // normalized (lowercase, no port, no trailing dot)
  std::string_view method;  // as sent
  std::string_view path;    // the target's path, query excluded; "" for host-only decisions
};

struct RequestEdit {
  enum class Kind { kSetHeader, kRemoveHeader, kSetQuery };
  Kind kind = Kind::kSetHeader;
  std::string name;
  // May hold a secret: never log an edit. kSetQuery: as expanded, not
  // percent-encoded (the proxy encodes it when it writes the target).
  std::string value;
};

enum class StepScope {
  kHostOnly,     // allow_hosts, deny_hosts, deny (SNI, DNS, the request gate)
  kRequestOnly,  // the rest, for a request whose host passed kHostOnly already
  kAll,
};

struct HandlerResult {
  bool refused = false;
  int status = 0;      // refused: the step's status, or 503 (missing secret, bad value)
  std::string reason;  // refused: for the reply body and the event; no secret values
  std::string step;    // refused: "allow_methods (step 2)"
  StepKind refused_by = StepKind::kDeny;  // refused: the kind of the step that refused
  bool missing_secret = false;            // refused: a secret is missing or unusable
  // Refused because a value could not be made (a secret missing or unusable,
  // a parameter not given, CR/LF/NUL in a value, a credential bound by
  // catch_all), not by a step's rule: refused in audit mode too, since the
  // request would otherwise go without its credential.
  bool failed_closed = false;
  std::vector<RequestEdit> edits;  // not refused: in step order
  bool credential = false;         // some edit carries a secret
};

// Runs `handler`'s steps of `scope` in order. Refusals: a step that refuses
// (its status); a template naming a secret that is missing or unusable, a
// parameter not given, or a value that holds CR, LF or NUL after expansion
// (503, the reason names the secret and the instance, never a value).
HandlerResult EvaluateHandler(const Handler& handler, const TemplateContext& context,
                              const RequestFacts& request, StepScope scope);

// "Basic " + base64(user ":" password).
std::string BasicAuthorization(std::string_view user, std::string_view password);

// `path` (no query) matches a path glob: '*' matches any run of characters,
// '/' included; everything else exactly.
bool PathGlobMatch(std::string_view pattern, std::string_view path);

}  // namespace egressd::policy
