#pragma once

// Slurm's Cores= for a NUMA node, from sysfs. Slurm numbers cores, not CPUs:
// 0.. in the order of (package, core id) over the online CPUs, so two
// hyperthreads of one core are one index (docs/SLURM.md, locality).

#include <string>

namespace devmem {
namespace ctl {

// The cores of NUMA node `numa` as Slurm indices ("0-7,16"), or "" if sysfs
// (at `sysfs`, normally "/sys") does not say.
std::string SlurmCoresOfNode(const std::string& sysfs, int numa);

}  // namespace ctl
}  // namespace devmem
