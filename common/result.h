// System failures travel as Result<T>: a value, or an errno with the context
// it happened in ("attach tc ingress on eth0: File exists"). User-input
// problems are diagnostics instead (translator/diag).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace nf2bpf {

struct Error {
  int code = 0;         // errno, or 0 when there is none
  std::string context;  // what was being done
  std::string message() const { return code ? context + ": " + std::strerror(code) : context; }
};

inline Error sys_error(std::string context, int code = errno) { return Error{code, std::move(context)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return e_; }

 private:
  Error e_;
  bool ok_ = true;
};

}  // namespace nf2bpf
