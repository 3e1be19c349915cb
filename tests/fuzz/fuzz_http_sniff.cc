// SniffHttpRequest on a connection's first bytes: the verdict never depends on
// how TCP split them. Once a prefix is decided (kHttp or kNotHttp), every
// longer input gets the same verdict; kNeedMore never outlives the method
// token and its space.
#include <cstdlib>
#include <span>

#include "userspace/protocol/http_sniff.h"

using egressd::protocol::kMaxMethodLength;
using egressd::protocol::SniffHttpRequest;
using egressd::protocol::SniffResult;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  const SniffResult whole = SniffHttpRequest(in);
  if (whole == SniffResult::kNeedMore && size > kMaxMethodLength + 1) std::abort();
  SniffResult decided = SniffResult::kNeedMore;
  for (size_t n = 0; n <= size; ++n) {
    const SniffResult prefix = SniffHttpRequest(in.first(n));
    if (decided != SniffResult::kNeedMore && prefix != decided) std::abort();
    if (prefix != SniffResult::kNeedMore) decided = prefix;
  }
  if (decided != whole) std::abort();
  return 0;
}
