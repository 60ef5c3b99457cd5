#pragma once
// The running kernel's version, for tests whose kernel answers changed
// between versions (the kernel matrix runs them on 6.12 and 7.3 as well as
// on the host's kernel; scripts/kernel_matrix.sh).

#include <sys/utsname.h>

#include <cstdio>

namespace devmem::testing {

// True if `uname -r` is at least major.minor ("6.12.95+deb12-amd64" is
// 6.12). An unreadable release counts as new (the host's case).
inline bool KernelAtLeast(int major, int minor) {
  struct utsname u;
  int have_major = 0;
  int have_minor = 0;
  if (::uname(&u) != 0 ||
      std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2) {
    return true;
  }
  return have_major > major || (have_major == major && have_minor >= minor);
}

}  // namespace devmem::testing
