#pragma once

#include <unistd.h>

#include <utility>

namespace devmem {

// Owns one file descriptor. Move-only; closes on destruction.
// The raw getter is deliberately named get_unowned() so that every use reads as
// "borrowing without ownership"; Release() is only for handing the fd
// elsewhere.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Borrows the fd. The caller must not close it or keep it past this object.
  int get_unowned() const { return fd_; }

  // Gives up ownership; the caller now closes the fd.
  [[nodiscard]] int Release() { return std::exchange(fd_, -1); }

  // Closes the current fd (if any) and takes ownership of `fd`.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace devmem
