#pragma once
// devmemctl listen/connect --count N: N sockets like the one the flags
// describe, made in batches (Session::OpenSockets: one gRPC call and a few
// RedeemMany frames per 1024), each steered to the command's binding if it
// has one. Prints one line per socket and a summary (opened, failed, wall
// time, sockets/s), or one JSON object with --json, then holds the sockets
// for --hold before closing them.

#include "client/libdevmem.h"

namespace devmem::ctl {

// Returns the exit code: 0 if every socket was made, the runtime-failure
// code otherwise (each failure is named). `command` is "listen" or
// "connect".
int OpenManySockets(const char* command, Session& session,
                    const SocketSpec& spec, int count);

}  // namespace devmem::ctl
