// This thread's OpenSSL error queue, read and emptied.
//
// Every failure path of ca/ and userspace/tls/ drains the queue, and every SSL
// I/O call starts with an empty one, so SSL_get_error never sees an error left
// by another connection (or a leaf mint) on the same proxy worker thread.
#pragma once

#include <string>

namespace egressd {

// The first error's library and reason codes, and all errors as one line.
struct OpensslErrors {
  int lib = 0;
  int reason = 0;
  std::string text;  // "error:0A00010B:SSL routines::wrong version number; ..." or ""
};

// Drains this thread's error queue.
OpensslErrors TakeOpensslErrors();

// Drains the queue into one line; "no reason given by OpenSSL" when empty.
std::string OpensslErrorText();

}  // namespace egressd
