#include "userspace/sandbox/policy_source.h"

#include <sys/stat.h>

#include <algorithm>

#include "policy/policy_loader.h"

namespace egressd::sandbox {
namespace {

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

}  // namespace

StatusOr<std::shared_ptr<const policy::CompiledPolicy>> LoadPolicySource(
    const PolicySource& source, const std::string& policy_dir, const std::string& shown_as) {
  std::string path;
  if (source.kind == PolicySource::Kind::kName) {
    if (!ValidName(source.value))
      return EGRESSD_ERROR("invalid policy name \"{}\" (letters, digits, '-', '_', '.')",
                           source.value);
    for (const char* ext : {".yaml", ".yml"}) {
      std::string candidate = policy_dir + "/" + source.value + ext;
      struct stat st {};
      if (stat(candidate.c_str(), &st) == 0) {
        path = candidate;
        break;
      }
    }
    if (path.empty())
      return EGRESSD_ERROR("no policy named \"{}\" in {} (looked for {}.yaml and {}.yml)",
                           source.value, policy_dir, source.value, source.value);
  } else {
    path = source.value;
  }
  policy::LoadResult result = policy::LoadPolicyFile(path);
  if (!result.ok())
    return EGRESSD_ERROR("{}",
                         policy::FormatErrors(result.errors, shown_as.empty() ? path : shown_as));
  return std::make_shared<const policy::CompiledPolicy>(std::move(*result.policy));
}

}  // namespace egressd::sandbox
