// Status and Result<T>: how every library function reports failure.
// This is not an exception hierarchy: library code never throws across the API
// and never prints; the CLI turns a Status into a message and an exit code.
// To add a code, extend StatusCode and status_code_name() together.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ss {

enum class StatusCode : uint8_t {
  OK = 0,
  INVALID_ARGUMENT,  // the caller passed something wrong (a usage error)
  NOT_FOUND,         // a file, tensor or key does not exist
  CORRUPT,           // a file violates its format (bad header, offset past EOF, ...)
  UNSUPPORTED,       // valid, but not something we implement (unknown dtype, ...)
  IO_ERROR,          // the operating system refused (open, mmap, write)
  INTEGRITY,         // hash, signature or provenance mismatch
  INTERNAL,          // a bug of ours
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }
  bool ok() const { return code_ == StatusCode::OK; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CORRUPT: model.gguf: offset 24: tensor count: expected <= 1048576, got 4611686018427387904"
  std::string to_string() const;
  // Prefixes the message with context ("reading shard 2: ...").
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::OK;
  std::string message_;
};

inline Status ok_status() { return Status(); }
Status invalid_argument(std::string message);
Status not_found(std::string message);
Status unsupported(std::string message);
Status io_error(std::string message);
Status internal_error(std::string message);
// The one shape of every format error: names file, offset, what was read, expected and actual.
Status corrupt(std::string_view file, uint64_t offset, std::string_view what, std::string_view expected,
               std::string_view actual);

// Value-or-error. Holds a T when ok(), else a non-OK Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                   // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {              // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::INTERNAL, "Result built from an OK status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // The value, or `fallback` when this holds an error.
  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ss

#define SS_CONCAT_INNER_(a, b) a##b
#define SS_CONCAT_(a, b) SS_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when it is not OK.
#define SS_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::ss::Status ss_status_ = (expr);         \
    if (!ss_status_.ok()) return ss_status_;  \
  } while (0)

// SS_ASSIGN_OR_RETURN(auto x, f()); — declares x from an ok Result, else returns its Status.
#define SS_ASSIGN_OR_RETURN(lhs, expr) SS_ASSIGN_OR_RETURN_IMPL_(SS_CONCAT_(ss_result_, __LINE__), lhs, expr)
#define SS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
