// Errors as values. The pager never throws across its API or its threads:
// every fallible call returns a Status (or a Result<T>) whose message names
// the setting, the syscall and the errno that went wrong.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "pager/export.h"
namespace pager {

class PAGER_EXPORT Status {
 public:
  Status() = default;  // success

  static Status Error(std::string message) { return Status(std::move(message)); }
  // "what: strerror(err)".
  static Status FromErrno(const std::string& what, int err);

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }
  explicit operator bool() const { return ok(); }

 private:
  explicit Status(std::string m) : failed_(true), message_(std::move(m)) {}
  bool failed_ = false;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {}    // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  // The error; an ok Status when there is a value.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace pager
