// The handler parts of a policy file: `handlers`, `by_host`, `catch_all`
// (policy/handler.h for the model). Called by the policy loader for those
// keys; reports into the loader's error list with line and column.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/handler.h"
#include "policy/policy.h"
#include "policy/yaml_errors.h"

namespace egressd::policy {

class HandlerLoader {
 public:
  explicit HandlerLoader(YamlErrors& errors) : errors_(errors) {}

  // handlers: {NAME: [step, ...]}; `at` is where the value starts.
  void LoadHandlers(const YAML::Node& v, const YAML::Mark& at, std::map<std::string, Handler>& out);
  // by_host: {GLOB: binding}
  void LoadByHost(const YAML::Node& v, const YAML::Mark& at, std::vector<HostBinding>& out);
  // catch_all: binding
  void LoadCatchAll(const YAML::Node& v, const YAML::Mark& at, std::optional<HandlerBinding>& out);
  // After the whole file: every binding loaded names a defined handler with
  // the parameters it uses (CheckBinding), and no catch_all adds a credential.
  void CheckBindings(const Policy& policy);

 private:
  void LoadStep(const std::string& handler, size_t index, const YAML::Node& item,
                std::vector<Step>& out);
  bool LoadListStep(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                    Step& step);
  bool LoadEntry(const std::string& where, const std::string& text, const YAML::Mark& m,
                 Step& step);
  bool LoadNameValueStep(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                         Step& step);
  bool LoadRemoveHeader(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                        Step& step);
  bool LoadBasicAuth(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                     Step& step);
  bool LoadDeny(const std::string& where, const YAML::Node& v, const YAML::Mark& at, Step& step);
  bool LoadStatus(const std::string& where, const YAML::Node& v, const YAML::Mark& at, int& out);
  bool LoadHeaderName(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                      std::string& out);
  bool LoadValue(const std::string& where, const std::string& key, const YAML::Node& v,
                 const YAML::Mark& at, Template& out);
  std::optional<HandlerBinding> LoadBinding(const std::string& where, const YAML::Node& v,
                                            const YAML::Mark& at);
  bool LoadParams(const std::string& where, const YAML::Node& v, const YAML::Mark& at, Params& out);

  // A binding loaded, checked once the handlers are known.
  struct LoadedBinding {
    std::string where;  // "by_host \"api.github.com\"", "catch_all"
    YAML::Mark mark;
    HandlerBinding binding;
    bool catch_all = false;
  };

  YamlErrors& errors_;
  std::vector<LoadedBinding> bindings_;
};

}  // namespace egressd::policy
