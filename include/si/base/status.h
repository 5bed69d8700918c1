// Status and Result<T>: the error channel for everything a user can get wrong (files, flags, requests).
// Invariants use SI_CHECK instead (check.h). The library never calls exit().
#pragma once

#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace si {

// Concatenates anything streamable: StrCat("tensor ", name, " has ", n, " dims").
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad flag, bad request, bad value
  kNotFound,         // missing file, key, tensor
  kIoError,          // open/read/write/mmap failed
  kCorrupt,          // the bytes of a file contradict its format
  kUnsupported,      // valid but not implemented here: unknown architecture, tensor type
  kOutOfRange,       // context exceeded, index past the end
  kResourceExhausted,
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "context: message", so errors read outside-in: "load model.gguf: tensor blk.0.attn_q.weight: ...".
  Status WithContext(std::string_view context) const {
    if (ok()) return *this;
    return Status(code_, StrCat(context, ": ", message_));
  }
  std::string ToString() const { return ok() ? "OK" : message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status InvalidArgumentError(const Args&... args) {
  return Status(StatusCode::kInvalidArgument, StrCat(args...));
}
template <typename... Args>
Status NotFoundError(const Args&... args) {
  return Status(StatusCode::kNotFound, StrCat(args...));
}
template <typename... Args>
Status IoError(const Args&... args) {
  return Status(StatusCode::kIoError, StrCat(args...));
}
template <typename... Args>
Status CorruptError(const Args&... args) {
  return Status(StatusCode::kCorrupt, StrCat(args...));
}
template <typename... Args>
Status UnsupportedError(const Args&... args) {
  return Status(StatusCode::kUnsupported, StrCat(args...));
}
template <typename... Args>
Status OutOfRangeError(const Args&... args) {
  return Status(StatusCode::kOutOfRange, StrCat(args...));
}
template <typename... Args>
Status ResourceExhaustedError(const Args&... args) {
  return Status(StatusCode::kResourceExhausted, StrCat(args...));
}
template <typename... Args>
Status InternalError(const Args&... args) {
  return Status(StatusCode::kInternal, StrCat(args...));
}

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace si

#define SI_CONCAT_INNER(a, b) a##b
#define SI_CONCAT(a, b) SI_CONCAT_INNER(a, b)

#define SI_RETURN_IF_ERROR(expr)                                   \
  do {                                                             \
    ::si::Status si_status_ = ::si::internal::AsStatus((expr));    \
    if (!si_status_.ok()) return si_status_;                       \
  } while (0)

#define SI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// SI_ASSIGN_OR_RETURN(auto x, F()): unwraps a Result or returns its Status.
#define SI_ASSIGN_OR_RETURN(lhs, expr) \
  SI_ASSIGN_OR_RETURN_IMPL(SI_CONCAT(si_result_, __LINE__), lhs, expr)
