// Runs a function when the scope ends, unless Release() was called first: the
// undo of a step that later steps may still refuse (a file written before a
// check that can fail).
#pragma once

#include <utility>

namespace egressd {

template <typename F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ~ScopeExit() {
    if (armed_) f_();
  }
  void Release() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace egressd
