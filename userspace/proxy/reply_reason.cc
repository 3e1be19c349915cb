#include "userspace/proxy/reply_reason.h"

namespace egressd::proxy {

const char* ReplyReasonCode(ReplyReason reason) {
  switch (reason) {
    case ReplyReason::kBadRequest:
      return "bad_request";
    case ReplyReason::kDeniedBody:
      return "denied_body";
    case ReplyReason::kDeniedHost:
      return "denied_host";
    case ReplyReason::kDeniedMethod:
      return "denied_method";
    case ReplyReason::kDeniedPath:
      return "denied_path";
    case ReplyReason::kDeniedHandler:
      return "denied_handler";
    case ReplyReason::kDeniedAddress:
      return "denied_address";
    case ReplyReason::kHostMismatch:
      return "host_mismatch";
    case ReplyReason::kHeadTooLarge:
      return "head_too_large";
    case ReplyReason::kHeaderTimeout:
      return "header_timeout";
    case ReplyReason::kMissingSecret:
      return "missing_secret";
    case ReplyReason::kHandlerFailed:
      return "handler_failed";
    case ReplyReason::kPlaintextCredential:
      return "plaintext_credential";
    case ReplyReason::kUpstreamUnresolved:
      return "upstream_unresolved";
    case ReplyReason::kUpstreamUnreachable:
      return "upstream_unreachable";
    case ReplyReason::kUpstreamCertificate:
      return "upstream_certificate";
    case ReplyReason::kUpstreamTls:
      return "upstream_tls";
    case ReplyReason::kUpstreamTimeout:
      return "upstream_timeout";
    case ReplyReason::kResponseTimeout:
      return "response_timeout";
    case ReplyReason::kNoResources:
      return "no_resources";
  }
  return "unknown";
}

bool IsPolicyDeny(ReplyReason reason) {
  switch (reason) {
    case ReplyReason::kDeniedHost:
    case ReplyReason::kDeniedMethod:
    case ReplyReason::kDeniedPath:
    case ReplyReason::kDeniedHandler:
    case ReplyReason::kDeniedAddress:
      return true;
    default:
      return false;
  }
}

ReplyReason HandlerRefusalReason(const policy::HandlerResult& result) {
  if (result.missing_secret) return ReplyReason::kMissingSecret;
  if (result.failed_closed) return ReplyReason::kHandlerFailed;
  switch (result.refused_by) {
    case policy::StepKind::kAllowHosts:
    case policy::StepKind::kDenyHosts:
      return ReplyReason::kDeniedHost;
    case policy::StepKind::kAllowMethods:
      return ReplyReason::kDeniedMethod;
    case policy::StepKind::kAllowPaths:
      return ReplyReason::kDeniedPath;
    default:
      return ReplyReason::kDeniedHandler;
  }
}

}  // namespace egressd::proxy
