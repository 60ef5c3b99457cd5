// devmemctl: command-line client for devmemd.
//
//   devmemctl nics [NIC...]          NIC inventory as the kernel reports it
//   devmemctl status                 daemon status
//   devmemctl nic show [NIC...]      NIC profiles: original/desired/actual
//   devmemctl nic restore NIC        put a NIC back as recorded (admin)
//   devmemctl listen --nic IF ...    get a listening socket, receive one stream
//   devmemctl connect --nic IF ...   get a connected socket, send one stream
//   devmemctl selftest --nic IF      the kernel's devmem test sequence
//                                    (ncdevmem test mode), in-process
//
// Exit codes: 0 ok, 1 runtime failure (stderr says what and what to try),
// 2 usage error.
//
// Flags are absl flags, but parsed here through absl's flag reflection rather
// than absl::ParseCommandLine: that one exits with status 1 on a bad flag
// (we promise 2) and cannot reject a flag that exists but does not belong to
// the chosen subcommand.

#include "client/ctl/cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {
namespace ctl {
namespace {

const std::vector<const char*>& GlobalFlags() {
  static const auto* flags =
      new std::vector<const char*>{"runtime_dir", "json"};
  return *flags;
}

// Word-wraps `text` to 79 columns, every line starting with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent) {
  std::string out;
  std::string line(indent);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() > indent.size() && line.size() + 1 + word.size() > 79) {
      absl::StrAppend(&out, line, "\n");
      line.assign(indent.data(), indent.size());
    }
    if (line.size() > indent.size()) line += ' ';
    absl::StrAppend(&line, word);
  }
  absl::StrAppend(&out, line, "\n");
  return out;
}

void PrintFlagHelp(FILE* out, const char* name, const char* help = nullptr) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  std::string def = flag->DefaultValue();
  absl::FPrintF(
      out, "  --%s%s\n%s", name,
      def.empty() || def == "false" || def == "0"
          ? ""
          : absl::StrCat(" (default ", def, ")"),
      Wrap(help != nullptr ? std::string(help) : flag->Help(), "      "));
}

void PrintCommandUsage(FILE* out, const Command& command) {
  absl::FPrintF(out, "usage: devmemctl %s %s\n\n%s", command.name,
                command.synopsis, Wrap(command.summary, ""));
  if (!command.flags.empty()) {
    absl::FPrintF(out, "\nflags:\n");
    for (const FlagDoc& doc : command.flags) {
      PrintFlagHelp(out, doc.name, doc.help);
    }
  }
  absl::FPrintF(out, "\nglobal flags:\n");
  for (const char* name : GlobalFlags()) PrintFlagHelp(out, name);
}

void PrintMainUsage(FILE* out, const std::vector<Command>& commands) {
  absl::FPrintF(out,
                "usage: devmemctl <command> [flags]\n\n"
                "Talks to devmemd, the daemon that hands out TCP sockets bound "
                "to a NIC.\n\ncommands:\n");
  for (const Command& command : commands) {
    absl::FPrintF(out, "  %-12s %s\n", command.name, command.brief);
  }
  absl::FPrintF(out, "  %-12s %s\n", "help", "Show help for a command.");
  absl::FPrintF(out,
                "\n`devmemctl <command> --help` shows that command's flags.\n"
                "\nglobal flags:\n");
  for (const char* name : GlobalFlags()) PrintFlagHelp(out, name);
  absl::FPrintF(out, "\nexit status: 0 ok, 1 failure, 2 usage error\n");
}

// ---------------------------------------------------------------------------
// main: subcommand and flag parsing
// ---------------------------------------------------------------------------

std::vector<Command> Commands() {
  std::vector<Command> all;
  for (auto group :
       {InventoryCommands, NicCommands, SocketCommands, SelftestCommands,
        ReservationCommands, HostCommands, GresCommands}) {
    for (Command& c : group()) all.push_back(std::move(c));
  }
  return all;
}

struct ParsedFlag {
  std::string name;
  absl::CommandLineFlag* flag;
  std::string value;
};

// Splits the command line into positional words and --flags (flag values
// are parsed later, once the command is known). kExitOk, or the usage exit
// code for an unknown flag or one without its value.
int SplitArgs(int argc, char** argv, std::vector<std::string>* positional,
              std::vector<ParsedFlag>* flags, bool* help) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional->emplace_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional->emplace_back(arg);
      continue;
    }
    absl::string_view body =
        absl::StripPrefix(absl::StripPrefix(arg, "-"), "-");
    absl::string_view name = body;
    absl::string_view value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "help" || name == "h") {
      *help = true;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string flag_name(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
      // --nojson style negation of a boolean flag.
      flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>()) {
        flags->push_back({absl::StrCat(name.substr(2)), flag, "false"});
        continue;
      }
      flag = nullptr;
    }
    if (flag == nullptr) {
      return UsageError(positional->empty() ? "" : (*positional)[0],
                        absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return UsageError(positional->empty() ? "" : (*positional)[0],
                          absl::StrCat("--", name, " needs a value"));
      }
    }
    flags->push_back({flag_name, flag, absl::StrCat(value)});
  }

  return kExitOk;
}

// Sets the flags given for `command`: global ones and its own; any other
// is a usage error, as is a value that does not parse.
int ApplyFlags(const Command& command, const std::vector<ParsedFlag>& flags) {
  for (const ParsedFlag& parsed : flags) {
    const auto allowed = [&](const std::vector<const char*>& list) {
      return std::any_of(list.begin(), list.end(),
                         [&](const char* n) { return parsed.name == n; });
    };
    const bool command_flag = std::any_of(
        command.flags.begin(), command.flags.end(),
        [&](const FlagDoc& doc) { return parsed.name == doc.name; });
    if (!allowed(GlobalFlags()) && !command_flag) {
      return UsageError(command.name, absl::StrCat("flag --", parsed.name,
                                                   " does not apply to `",
                                                   command.name, "`"));
    }
    std::string error;
    if (!parsed.flag->ParseFrom(parsed.value, &error)) {
      return UsageError(command.name, absl::StrCat("--", parsed.name, "=",
                                                   parsed.value, ": ", error));
    }
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  // A receiver that goes away must not kill us silently in write(2).
  signal(SIGPIPE, SIG_IGN);

  const std::vector<Command> commands = Commands();
  std::vector<std::string> positional;
  std::vector<ParsedFlag> flags;
  bool help = false;
  if (int rc = SplitArgs(argc, argv, &positional, &flags, &help);
      rc != kExitOk) {
    return rc;
  }
  if (positional.empty()) {
    if (help) {
      PrintMainUsage(stdout, commands);
      return kExitOk;
    }
    PrintMainUsage(stderr, commands);
    return kExitUsage;
  }
  std::string name = positional[0];
  positional.erase(positional.begin());
  if (name == "help") {
    if (positional.empty()) {
      PrintMainUsage(stdout, commands);
      return kExitOk;
    }
    name = positional[0];
    positional.erase(positional.begin());
    help = true;
  }
  const auto find = [&commands](const std::string& n) -> const Command* {
    for (const Command& c : commands) {
      if (n == c.name) return &c;
    }
    return nullptr;
  };
  const Command* command = find(name);
  // Two-word commands ("nic show"): `name` is their group.
  std::vector<std::string> group;
  for (const Command& c : commands) {
    if (absl::StartsWith(c.name, name + " ")) {
      group.push_back(
          std::string(absl::string_view(c.name).substr(name.size() + 1)));
    }
  }
  if (command == nullptr && !group.empty()) {
    if (!positional.empty() && find(name + " " + positional[0]) != nullptr) {
      command = find(name + " " + positional[0]);
      positional.erase(positional.begin());
    } else if (help && positional.empty()) {
      absl::PrintF("usage: devmemctl %s <%s> [flags]\n\n", name,
                   absl::StrJoin(group, "|"));
      for (const Command& c : commands) {
        if (absl::StartsWith(c.name, name + " ")) {
          absl::PrintF("  %-12s %s\n", c.name, c.brief);
        }
      }
      return kExitOk;
    } else {
      return UsageError(
          name,
          absl::StrCat(positional.empty() ? "needs a subcommand"
                                          : absl::StrCat("unknown subcommand '",
                                                         positional[0], "'"),
                       "; one of: ", absl::StrJoin(group, ", ")));
    }
  }
  if (command == nullptr) {
    absl::FPrintF(stderr, "devmemctl: unknown command '%s'\n\n", name);
    PrintMainUsage(stderr, commands);
    return kExitUsage;
  }
  if (help) {
    PrintCommandUsage(stdout, *command);
    return kExitOk;
  }
  if (int rc = ApplyFlags(*command, flags); rc != kExitOk) return rc;
  if (!command->takes_positional && !positional.empty()) {
    return UsageError(command->name, absl::StrCat("unexpected argument '",
                                                  positional[0], "'"));
  }
  return command->run(positional);
}

}  // namespace
}  // namespace ctl
}  // namespace devmem

int main(int argc, char** argv) { return devmem::ctl::Main(argc, argv); }
