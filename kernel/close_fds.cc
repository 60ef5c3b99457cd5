#include "kernel/close_fds.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace devmem {

void CloseFds(std::vector<UniqueFd>* fds) {
  std::vector<int> numbers;
  numbers.reserve(fds->size());
  for (UniqueFd& fd : *fds) {
    if (fd.valid()) numbers.push_back(fd.Release());
  }
  fds->clear();
  std::sort(numbers.begin(), numbers.end());
  size_t i = 0;
  while (i < numbers.size()) {
    size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1) ++j;
    const auto first = static_cast<unsigned int>(numbers[i]);
    const auto last = static_cast<unsigned int>(numbers[j]);
    if (j == i || ::close_range(first, last, 0) != 0) {
      for (size_t k = i; k <= j; ++k) ::close(numbers[k]);
    }
    i = j + 1;
  }
}

}  // namespace devmem
