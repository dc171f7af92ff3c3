// Status helpers: names of codes and the one format of error messages.
#include "safeshrink/status.h"

namespace ss {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::OK: return "OK";
    case StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case StatusCode::NOT_FOUND: return "NOT_FOUND";
    case StatusCode::CORRUPT: return "CORRUPT";
    case StatusCode::UNSUPPORTED: return "UNSUPPORTED";
    case StatusCode::IO_ERROR: return "IO_ERROR";
    case StatusCode::INTEGRITY: return "INTEGRITY";
    case StatusCode::INTERNAL: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status invalid_argument(std::string message) { return Status(StatusCode::INVALID_ARGUMENT, std::move(message)); }
Status not_found(std::string message) { return Status(StatusCode::NOT_FOUND, std::move(message)); }
Status unsupported(std::string message) { return Status(StatusCode::UNSUPPORTED, std::move(message)); }
Status io_error(std::string message) { return Status(StatusCode::IO_ERROR, std::move(message)); }
Status internal_error(std::string message) { return Status(StatusCode::INTERNAL, std::move(message)); }

Status corrupt(std::string_view file, uint64_t offset, std::string_view what, std::string_view expected,
               std::string_view actual) {
  std::string m;
  m.reserve(file.size() + what.size() + expected.size() + actual.size() + 48);
  m.append(file).append(": offset ").append(std::to_string(offset)).append(": ").append(what);
  m.append(": expected ").append(expected).append(", got ").append(actual);
  return Status(StatusCode::CORRUPT, std::move(m));
}

}  // namespace ss
