"""The devmemd package version, for the .deb's file name and control file.

It must equal kDevmemdVersion in daemon/kernel_facts.h (what devmemd reports in
GetStatus and devmemd_build_info): //deploy:deb fails to build otherwise.
"""

DEVMEMD_VERSION = "0.1.0"
