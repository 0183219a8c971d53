#include "pager/status.h"

#include <cstring>

namespace pager {

Status Status::FromErrno(const std::string& what, int err) {
  char buf[128];
  // GNU strerror_r returns the message, not always in buf.
  const char* msg = strerror_r(err, buf, sizeof buf);
  return Error(what + ": " + msg);
}

}  // namespace pager
