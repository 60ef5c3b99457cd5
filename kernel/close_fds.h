#pragma once

#include <vector>

#include "kernel/unique_fd.h"

namespace devmem {

// Closes every fd of `fds` and empties it, with one close_range(2) per run
// of consecutive fd numbers that are all in `fds` (a socket maker's batch is
// mostly one run), so an fd not in `fds` is never touched. Falls back to
// close(2) per fd where close_range is missing (Linux before 5.9).
void CloseFds(std::vector<UniqueFd>* fds);

}  // namespace devmem
