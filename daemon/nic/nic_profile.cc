#include "daemon/nic/nic_profile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <utility>

#include <google/protobuf/text_format.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/nic/inventory_proto.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using devmem::v1::NicSettings;

devmem::v1::TcpDataSplit ToProto(TcpDataSplit s) {
  return static_cast<devmem::v1::TcpDataSplit>(static_cast<int>(s));
}

TcpDataSplit FromProto(devmem::v1::TcpDataSplit s) {
  return static_cast<TcpDataSplit>(static_cast<uint8_t>(s));
}

uint32_t RxQueueCount(const devmem::v1::Channels& c) {
  return c.rx_count() + c.combined_count();
}

bool IsDefaultSpread(const NicSettings& s) {
  const uint32_t n = RxQueueCount(s.channels());
  if (n == 0 || s.rss_indir().empty()) return false;
  for (int i = 0; i < s.rss_indir_size(); ++i) {
    if (s.rss_indir(i) != static_cast<uint32_t>(i) % n) return false;
  }
  return true;
}

absl::Status Step(absl::string_view step, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
}

absl::Status SetCombined(NicControl& control, uint32_t ifindex,
                         uint32_t combined) {
  ChannelsSet set;
  set.combined_count = combined;
  return control.SetChannels(ifindex, set);
}

}  // namespace

uint32_t RxQueueCount(const ChannelsInfo& channels) {
  return channels.rx_count.value_or(0) + channels.combined_count.value_or(0);
}

std::vector<Capability> ProbeDevmem(NicControl& control, uint32_t ifindex) {
  std::vector<Capability> missing;
  auto add = [&missing](const std::string& name, const absl::Status& s) {
    if (!s.ok()) missing.push_back(CapabilityFromStatus(name, s));
  };
  auto channels = control.GetChannels(ifindex);
  add("channels", channels.status());
  if (channels.ok() && RxQueueCount(*channels) < 2) {
    Capability c;
    c.name = "queues";
    c.support = Support::kUnsupported;
    c.reason = absl::StrCat("the NIC has ", RxQueueCount(*channels),
                            " RX queue(s); devmem needs at least 2 (one for "
                            "the pool, one for ordinary traffic)");
    missing.push_back(c);
  }
  auto rings = control.GetRings(ifindex);
  if (!rings.ok()) {
    add("tcp_data_split", rings.status());
  }
  auto features = control.GetFeatures(ifindex);
  if (!features.ok()) {
    add("ntuple", features.status());
  } else if (!features->ntuple_hw && !features->ntuple_active) {
    Capability c;
    c.name = "ntuple";
    c.support = Support::kUnsupported;
    c.reason =
        "rx-ntuple-filter is not a changeable feature of this NIC "
        "(ethtool -k shows it [fixed] or absent)";
    missing.push_back(c);
  }
  add("rss", control.GetRss(ifindex, 0).status());
  add("ntuple_rules", control.ListRules(ifindex).status());
  return missing;
}

absl::StatusOr<ProfilePlan> PlanProfile(const devmem::v1::NicProfile& profile,
                                        uint32_t ifindex,
                                        const ChannelsInfo& channels) {
  ProfilePlan plan;
  plan.nic = profile.nic();
  plan.ifindex = ifindex;
  plan.rss_mode = profile.rss_mode() == devmem::v1::RSS_MODE_UNSPECIFIED
                      ? devmem::v1::RSS_MODE_EXCLUDE_POOL
                      : profile.rss_mode();
  plan.rx_queues = RxQueueCount(channels);
  if (profile.combined_channels() != 0) {
    plan.combined_channels = profile.combined_channels();
    plan.rx_queues =
        channels.rx_count.value_or(0) + profile.combined_channels();
  }
  if (profile.pool_queue_ids_size() > 0) {
    plan.pool.assign(profile.pool_queue_ids().begin(),
                     profile.pool_queue_ids().end());
    std::sort(plan.pool.begin(), plan.pool.end());
  } else {
    const uint32_t n = profile.pool_queues() == 0 ? 1 : profile.pool_queues();
    if (n >= plan.rx_queues) {
      return absl::InvalidArgumentError(absl::StrCat(
          profile.nic(), ": pool_queues = ", n, " leaves no queue of ",
          plan.rx_queues, " for ordinary traffic; use at most ",
          plan.rx_queues == 0 ? 0 : plan.rx_queues - 1));
    }
    for (uint32_t q = plan.rx_queues - n; q < plan.rx_queues; ++q) {
      plan.pool.push_back(q);
    }
  }
  for (uint32_t q : plan.pool) {
    if (q >= plan.rx_queues) {
      return absl::InvalidArgumentError(
          absl::StrCat(profile.nic(), ": pool queue ", q,
                       " does not exist; the NIC has RX queues 0..",
                       plan.rx_queues == 0 ? 0 : plan.rx_queues - 1));
    }
  }
  if (plan.pool.size() >= plan.rx_queues) {
    return absl::InvalidArgumentError(
        absl::StrCat(profile.nic(), ": the pool takes all ", plan.rx_queues,
                     " RX queues; leave at least one for ordinary traffic"));
  }
  return plan;
}

absl::StatusOr<NicSettings> ReadSettings(NicControl& control, uint32_t ifindex,
                                         bool steering) {
  NicSettings s;
  auto channels = control.GetChannels(ifindex);
  if (!channels.ok()) return channels.status();
  ChannelsToProto(*channels, s.mutable_channels());
  auto rings = control.GetRings(ifindex);
  if (!rings.ok()) return rings.status();
  s.set_tcp_data_split(ToProto(rings->tcp_data_split));
  if (rings->hds_thresh) s.set_hds_thresh(*rings->hds_thresh);
  if (!steering) return s;
  auto features = control.GetFeatures(ifindex);
  if (!features.ok()) return features.status();
  s.set_ntuple(features->ntuple_active);
  auto rss = control.GetRss(ifindex, 0);
  if (!rss.ok()) return rss.status();
  for (uint32_t q : rss->indir) s.add_rss_indir(q);
  return s;
}

NicSettings DesiredSettings(const NicSettings& original,
                            const ProfilePlan& plan) {
  NicSettings d;
  *d.mutable_channels() = original.channels();
  if (plan.combined_channels) {
    d.mutable_channels()->set_combined_count(*plan.combined_channels);
  }
  d.set_tcp_data_split(devmem::v1::TCP_DATA_SPLIT_ENABLED);
  // Only where the driver reported HDS (KERNEL_API.md section 3: send
  // hds-thresh only if RINGS_GET had it); bnxt and fbnic default non-zero.
  if (original.has_hds_thresh()) d.set_hds_thresh(0);
  d.set_ntuple(true);
  const absl::flat_hash_set<uint32_t> pool(plan.pool.begin(), plan.pool.end());
  std::vector<uint32_t> rest;
  for (uint32_t q = 0; q < plan.rx_queues; ++q) {
    if (!pool.contains(q)) rest.push_back(q);
  }
  const int size = original.rss_indir_size();
  for (int i = 0; i < size && !rest.empty(); ++i) {
    d.add_rss_indir(rest[static_cast<size_t>(i) % rest.size()]);
  }
  return d;
}

bool OnlySteeringMissing(const std::vector<Capability>& missing) {
  for (const Capability& c : missing) {
    if (c.name != "ntuple" && c.name != "ntuple_rules" && c.name != "rss") {
      return false;
    }
  }
  return true;
}

NicSettings HeaderSplitSettings(const NicSettings& original,
                                const ProfilePlan& plan) {
  NicSettings d = DesiredSettings(original, plan);
  d.clear_ntuple();
  d.clear_rss_indir();
  return d;
}

absl::Status ApplySettings(NicControl& control, uint32_t ifindex,
                           const NicSettings& original,
                           const NicSettings& desired) {
  absl::Status s;
  if (desired.channels().has_combined_count() &&
      desired.channels().combined_count() !=
          original.channels().combined_count()) {
    s = Step("set channels", SetCombined(control, ifindex,
                                         desired.channels().combined_count()));
  }
  if (s.ok() && desired.has_ntuple() && desired.ntuple() &&
      !original.ntuple()) {
    s = Step("turn ntuple on", control.SetNtuple(ifindex, true));
  }
  if (s.ok()) {
    RingsSet rings;
    rings.tcp_data_split = FromProto(desired.tcp_data_split());
    if (desired.has_hds_thresh()) rings.hds_thresh = desired.hds_thresh();
    s = Step("enable header split", control.SetRings(ifindex, rings));
  }
  if (s.ok() && desired.rss_indir_size() > 0) {
    std::vector<uint32_t> indir(desired.rss_indir().begin(),
                                desired.rss_indir().end());
    s = Step("keep the pool out of RSS",
             control.SetRssIndir(ifindex, 0, indir));
  }
  if (!s.ok()) {
    // Best effort; the caller reports the first error, which says why.
    (void)RestoreSettings(control, ifindex, original);
  }
  return s;
}

absl::Status RestoreSettings(NicControl& control, uint32_t ifindex,
                             const NicSettings& original) {
  absl::Status first;
  auto keep = [&first](const absl::Status& s) {
    if (first.ok() && !s.ok()) first = s;
  };
  auto channels = control.GetChannels(ifindex);
  const bool restore_combined = channels.ok() &&
                                original.channels().has_combined_count() &&
                                channels->combined_count.value_or(0) !=
                                    original.channels().combined_count();
  const bool grow =
      restore_combined && original.channels().combined_count() >
                              channels->combined_count.value_or(0);
  if (grow) {
    keep(Step(
        "restore channels",
        SetCombined(control, ifindex, original.channels().combined_count())));
  }
  if (original.rss_indir_size() > 0) {
    // The driver's default spread is written back as a reset, so the kernel
    // again treats the table as not user-configured and follows channel
    // changes (net/ethtool/ioctl.c ethtool_set_rxfh_indir: size 0 resets).
    std::vector<uint32_t> indir;
    if (!IsDefaultSpread(original)) {
      indir.assign(original.rss_indir().begin(), original.rss_indir().end());
    }
    keep(Step("restore RSS", control.SetRssIndir(ifindex, 0, indir)));
  }
  if (original.has_tcp_data_split()) {
    RingsSet rings;
    rings.tcp_data_split = FromProto(original.tcp_data_split());
    if (original.has_hds_thresh()) rings.hds_thresh = original.hds_thresh();
    keep(Step("restore header split", control.SetRings(ifindex, rings)));
  }
  if (original.has_ntuple()) {
    auto features = control.GetFeatures(ifindex);
    if (!features.ok()) {
      keep(Step("read features", features.status()));
    } else if (features->ntuple_active != original.ntuple()) {
      keep(Step("restore ntuple",
                control.SetNtuple(ifindex, original.ntuple())));
    }
  }
  if (restore_combined && !grow) {
    keep(Step(
        "restore channels",
        SetCombined(control, ifindex, original.channels().combined_count())));
  }
  return first;
}

OriginalStateStore::OriginalStateStore(const std::string& state_dir)
    : dir_(absl::StrCat(state_dir, "/nics")) {}

std::string OriginalStateStore::PathFor(absl::string_view nic) const {
  return absl::StrCat(dir_, "/", nic, ".original.textproto");
}

absl::StatusOr<std::optional<NicSettings>> OriginalStateStore::Load(
    absl::string_view nic) const {
  const std::string path = PathFor(nic);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<NicSettings>();
    return ErrnoStatus(errno, absl::StrCat("read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  NicSettings settings;
  if (!google::protobuf::TextFormat::ParseFromString(ss.str(), &settings)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        " is not a valid devmem.v1.NicSettings record; fix or remove "
        "it after checking the NIC's settings by hand"));
  }
  return std::optional<NicSettings>(std::move(settings));
}

absl::Status OriginalStateStore::Save(absl::string_view nic,
                                      const NicSettings& settings) const {
  const std::string parent = dir_.substr(0, dir_.rfind('/'));
  for (const std::string& d : {parent, dir_}) {
    if (::mkdir(d.c_str(), 0750) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("create state directory ", d));
    }
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(settings, &text);
  text = absl::StrCat("# devmemd: original state of ", nic,
                      ", recorded before the first change.\n", text);
  const std::string path = PathFor(nic);
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    UniqueFd fd(
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n =
          ::write(fd.get_unowned(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, absl::StrCat("write ", tmp));
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get_unowned()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid() || ::fsync(dir.get_unowned()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fsync ", dir_));
  }
  return absl::OkStatus();
}

absl::Status OriginalStateStore::Remove(absl::string_view nic) const {
  const std::string path = PathFor(nic);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

}  // namespace devmem
