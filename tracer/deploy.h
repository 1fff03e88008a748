// Zero-deploy: an ssh:// target whose machine B has no sbagent gets this sbrun's own agent for
// B's architecture, uploaded over the ssh connection that then carries the agent's protocol
// (the idea of RPyC's zero-deploy; docs/boards.md, "Zero-deploy over ssh").
//
// sbrun runs the remote half, tracer/deploy.sh, as the ssh command. It says B's `uname -m` and
// the checksums of the agents cached in ~/.cache/splitbrain/VERSION/ on B; this half picks the
// agent file for that machine from the agent directory (installed beside sbrun in
// lib/splitbrain/agents/, or --agent-dir), uploads it when B's copy is missing or differs, and
// B checks the upload's SHA-256, installs it (0700, atomic rename) and execs it with --stdio. One
// ssh connection, no port opened on B, and the agent ends with the connection as with a plain
// `ssh ... sbagent --stdio`.

#pragma once

#include <kj/async-io.h>
#include <kj/function.h>
#include <kj/string.h>
#include <kj/vector.h>
#include <stdint.h>

namespace sb {

// --deploy=auto|always|never.
enum class DeployMode : uint8_t {
  AUTO,    // upload when B's cached agent is missing or its checksum differs
  ALWAYS,  // upload every time
  NEVER,   // no deploy: run `sbagent` from B's PATH (or the URL's path), as before
};

struct DeployOptions {
  DeployMode mode = DeployMode::AUTO;
  // --agent-dir: where the sbagent-ARCH files are; "" for the default places (findAgentDir).
  kj::String agentDir;
  bool verbose = false;
};

// The version whose cache directory the agents go to on B (~/.cache/splitbrain/VERSION).
kj::StringPtr deployVersion();

// The agent file names that can serve a machine whose `uname -m` says `machine`, best first:
// "aarch64" -> sbagent-aarch64; "armv7l" or "armv8l" (32-bit userland) -> sbagent-armv7l, then
// sbagent-armhf (Debian's armhf is ARMv7 with VFP); "arm64" -> sbagent-aarch64; anything else
// -> sbagent-MACHINE. An armv6l (Raspberry Pi 1 and Zero) is not served by an armhf build.
kj::Vector<kj::String> agentNamesFor(kj::StringPtr machine);

// The agent directory: `given` (--agent-dir) if not empty, else $SB_AGENT_DIR, else
// ../lib/splitbrain/agents beside sbrun (installed), else agents/ beside it (the build tree,
// made by tracer/meson.build). "" when none of the default places exists.
kj::String findAgentDir(kj::StringPtr given);

// The ssh remote command that runs tracer/deploy.sh on B: one string for B's (POSIX) shell.
kj::String deployCommand();

// What the dialogue reports back to its AgentLink.
struct DeployHooks {
  // A -v line ("target 'b': ..."), printed only with -v.
  kj::Function<void(kj::StringPtr)> verbose;
  // Called when an upload starts: the connect deadline then gives it time.
  kj::Function<void(uint64_t bytes)> uploading;
};

// Runs the dialogue of tracer/deploy.sh on `stream`, ssh's stdin and stdout. When the promise
// resolves, B has exec'd the agent and the stream carries its protocol. Fails with a message
// that says what to do (no agent for B's machine, B without a checksum tool, a damaged upload);
// an end of the stream (ssh could not log in, say) is a DISCONNECTED exception, so the caller
// reports how ssh ended. `stream` must outlive the promise.
kj::Promise<void> deployAgent(kj::AsyncIoStream& stream, kj::StringPtr targetName,
                              const DeployOptions& options, DeployHooks hooks);

}  // namespace sb
