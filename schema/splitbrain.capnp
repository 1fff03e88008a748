@0xd23c8b1306e6b81e;
# The protocol between sbrun (the tracer, machine A) and sbagent (machine B).
#
# Everything crosses as meaning, never as one architecture's bytes (DESIGN D3): flags are named
# booleans, structs are typed, and numbers say their unit. The tracer decodes the tracee's ABI
# into these requests; the agent performs them with its own libc; typed results come back.
#
# Conventions:
# - `result :Int64` is the kernel's own encoding: a value >= 0 on success, or -errno on failure.
#   Errno numbers are Linux's asm-generic numbering (identical on x86-64 and aarch64).
# - Paths are raw bytes (`Data`), not NUL-terminated, never re-encoded.
# - A `Node` is an open file description on the agent. Dropping the last reference closes it;
#   `close` does so explicitly and reports the error close(2) gives (NFS EIO). After a
#   disconnect every Node fails with DISCONNECTED, which the tracer turns into EIO (D10).

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sb::proto");

const protocolVersion :UInt32 = 3;
# Bumped on any incompatible change; the handshake refuses a mismatch on both sides.

struct Uname {
  sysname @0 :Text;
  nodename @1 :Text;
  release @2 :Text;
  version @3 :Text;
  machine @4 :Text;
  domainname @5 :Text;
}

struct Hello {
  protocolVersion @0 :UInt32;
  clientArch @1 :Text;      # e.g. "x86_64": the tracee ABI the client speaks.
  token @2 :Data;           # Must equal the agent's --token-file content when it has one.
  clientName @3 :Text;      # Free text for the agent's log, e.g. "sbrun 0.1 pid 1234".
  heartbeatMillis @4 :UInt32;
  # The client's heartbeat period (sbrun --heartbeat) in milliseconds; 0: it sends no pings.
  # While it is on, a live client sends a ping at least every quarter of it, so the agent may
  # end a session from which nothing has arrived for far longer (sbagent --client-timeout).
  # Older clients leave it 0: their sessions are never ended for silence.
}

struct Welcome {
  protocolVersion @0 :UInt32;
  arch @1 :Text;            # The agent's architecture, e.g. "x86_64", "aarch64".
  kernel @2 :Text;          # uname release of the agent's kernel.
  uname @3 :Uname;
  root @4 :Data;            # The agent's --root (confinement) or "/".
  readOnly @5 :Bool;
  agentPid @6 :Int32;
  uid @7 :UInt32;           # Identity the agent performs syscalls as.
  gid @8 :UInt32;
  assumesCredentials @9 :Bool;
  # The agent can perform a call with the caller's credentials (Node.asCaller, SpawnRequest.
  # credentials): it may change its threads' fs ids, groups and capabilities (CAP_SETUID and
  # CAP_SETGID). Absent (an older agent) or false: every call runs as uid/gid above.
}

struct Credentials {
  # A traced thread's credentials as its kernel on A holds them. Numeric ids cross as they are:
  # B's id space is the truth (docs/security-model.md).
  uid @0 :UInt32;           # real, effective, saved and file system user ids
  euid @1 :UInt32;
  suid @2 :UInt32;
  fsuid @3 :UInt32;
  gid @4 :UInt32;           # the same for the group
  egid @5 :UInt32;
  sgid @6 :UInt32;
  fsgid @7 :UInt32;
  groups @8 :List(UInt32);  # supplementary groups
  capEffective @9 :UInt64;  # capability sets, bit N: capability N (the kernel's numbering)
  capPermitted @10 :UInt64;
  capInheritable @11 :UInt64;
}

interface Agent {
  handshake @0 (hello :Hello) -> (welcome :Welcome, session :Session);
  # Must come first. Throws a clear error on a version or token mismatch.
}

interface Session {
  # One per connection. It owns every Node it hands out; all are closed when it goes.

  root @0 () -> (dir :Node);
  # The agent's root directory (its --root, or "/"). Absolute paths resolve against it.

  uname @1 () -> (result :Int64, uname :Uname);

  openPath @2 (path :Data) -> (result :Int64, dir :Node);
  # Opens PATH as a directory with O_PATH, for a tracer that wants a cwd. ENOTDIR, ENOENT...

  releaseOwner @3 (owner :Int32) -> ();
  # The traced process `owner` is gone: drop every POSIX record lock it held (see Node.lock).

  spawn @4 (request :SpawnRequest)
      -> (result :Int64, process :Process, stdio :List(StdioPipe), pid :Int32);
  # Runs a program on the agent (DESIGN D7): what execve would do there, in a new process.
  # `result` is 0 or the -errno execve gives (ENOENT, EACCES, ENOEXEC, E2BIG ...), found before
  # this returns; then `process` is its handle, `stdio` the agent's ends of the pipes asked
  # for, and `pid` its process id as the agent sees it (for --trace; 0 from an older agent). The session kills (SIGKILL, its whole process group) and reaps every process it spawned
  # when it ends.

  # ---- Waiting for readiness (poll, select, epoll) -----------------------------------------

  poll @5 (fds :List(PollFd), timeoutNs :Int64) -> (result :Int64, revents :List(PollEvents));
  # poll(2) on nodes of this session: waits until one is ready or `timeoutNs` nanoseconds have
  # passed (-1: no limit, 0: look and return). `result` is the number of entries with non-empty
  # `revents` (0 on timeout) or -errno; `revents` has one entry per `fds` entry, in order. As in
  # poll(2), err/hup/nval are reported whether asked or not. A node that is closed or belongs to
  # another session gets `nval`. The wait runs on a worker and is cancellable: dropping the call
  # ends it (the tracer does so when a signal interrupts the program's wait, or when a local fd
  # of the same wait became ready first).

  # ---- Sockets ------------------------------------------------------------------------------

  socket @6 (family :SockFamily, type :SockType, protocol :Int32, nonBlock :Bool)
      -> (result :Int64, node :Node);
  # socket(2) on the agent's network stack. `protocol` is the IANA (IPPROTO_*) or NETLINK_*
  # number, the same on every Linux arch. The agent always adds SOCK_CLOEXEC (the tracer keeps
  # close-on-exec on its placeholder).

  socketpair @7 (family :SockFamily, type :SockType, protocol :Int32, nonBlock :Bool)
      -> (result :Int64, first :Node, second :Node);
  # socketpair(2) on the agent: both ends are nodes of this session.
  defineCredentials @8 (id :UInt32, credentials :Credentials) -> (result :Int64);
  # Names a set of credentials for Node.asCaller and SpawnRequest.credentials, for the rest of
  # the session (the client sends each set once, before the first call that uses it: calls are
  # delivered in order). id 0 is reserved (the agent's own). -EPERM when the agent cannot
  # assume credentials (Welcome.assumesCredentials), -EINVAL for id 0 or too many sets.
}

struct PollEvents {
  # poll(2)'s event bits by name: their values differ between architectures (sparc, mips).
  in @0 :Bool;
  pri @1 :Bool;
  out @2 :Bool;
  err @3 :Bool;
  hup @4 :Bool;
  nval @5 :Bool;
  rdNorm @6 :Bool;
  rdBand @7 :Bool;
  wrNorm @8 :Bool;
  wrBand @9 :Bool;
  msg @10 :Bool;
  rdHup @11 :Bool;
}

struct PollFd {
  node @0 :Node;
  events @1 :PollEvents;
}

# ---- Sockets -------------------------------------------------------------------------------
# The socket calls cross as meaning too (DESIGN D3): families, types and flags are enums and
# named booleans (their numbers differ between Linux arches, e.g. SOCK_STREAM on MIPS), and an
# address is a typed struct, never a `struct sockaddr` (whose sa_family is host-endian).
# Socket options and control messages are the exception: their payloads are ABI-bound bytes,
# sent only between equal ABIs (the tracer checks the Welcome's arch) and only for options
# the tracer's allowlist knows to hold no pointers (tracer/sockopt_table.h).

enum SockFamily {
  unix @0;                  # AF_UNIX
  inet @1;                  # AF_INET
  inet6 @2;                 # AF_INET6
  netlink @3;               # AF_NETLINK (payloads are the agent's host-endian messages)
}

enum SockType {
  stream @0;
  dgram @1;
  raw @2;
  rdm @3;
  seqpacket @4;
  dccp @5;
  packet @6;
}

struct SockAddr {
  union {
    unspec @0 :Void;        # AF_UNSPEC (connect: dissolve a datagram association)
    inet @1 :InetAddr;
    inet6 @2 :Inet6Addr;
    unixPath @3 :Data;      # A file system name (no NUL); relative to the call's `dir`.
    unixAbstract @4 :Data;  # An abstract name, without its leading NUL byte.
    unixUnnamed @5 :Void;   # No name: an unbound peer; in bind, autobind.
    netlink @6 :NetlinkAddr;
    other @7 :UInt16;       # A family the protocol does not translate (AF_* numbers are the
                            # same on every Linux arch): the agent's kernel gives its errno.
  }
  length @8 :UInt32;
  # The address length the program passed (bind, connect, sendto), so the agent's kernel makes
  # its own length checks (EINVAL for a short sockaddr_in ...); the struct sizes it compares
  # with (16, 28, 110, 12) are the same on every Linux arch. Unused in answers.
}

struct InetAddr {
  port @0 :UInt16;          # Host values: port 80 is 80.
  addr @1 :UInt32;          # 127.0.0.1 is 0x7f000001.
}

struct Inet6Addr {
  port @0 :UInt16;
  flowInfo @1 :UInt32;
  addr @2 :Data;            # 16 bytes, network order (as written).
  scopeId @3 :UInt32;
}

struct NetlinkAddr {
  portId @0 :UInt32;
  groups @1 :UInt32;
}

struct MsgFlags {
  # MSG_* flags of send/recv calls, and msg_flags of recvmsg answers.
  peek @0 :Bool;
  oob @1 :Bool;
  waitAll @2 :Bool;
  dontWait @3 :Bool;
  trunc @4 :Bool;
  ctrunc @5 :Bool;
  eor @6 :Bool;
  more @7 :Bool;
  confirm @8 :Bool;
  dontRoute @9 :Bool;
  errQueue @10 :Bool;
  noSignal @11 :Bool;       # The agent never raises SIGPIPE; the tracer does, unless this is set.
  fastOpen @12 :Bool;
  batch @13 :Bool;
  zeroCopy @14 :Bool;
  waitForOne @15 :Bool;     # (recvmmsg; never sent: the tracer loops)
}

struct Cmsg {
  # One control message (ancillary data), level and type in the agent's numbering, data raw.
  level @0 :Int32;
  type @1 :Int32;
  data @2 :Data;
}

struct PassedFd {
  # One fd a recvMsg received (SCM_RIGHTS), now a node of the session, with what the tracer
  # needs to treat it as the kernel would: its file type and, for a socket, its kind.
  node @0 :Node;
  type @1 :FileType;
  socket @2 :Bool;          # A socket whose family and type the wire names (the next fields).
  family @3 :SockFamily;
  sockType @4 :SockType;
  receiveTimeout @5 :Bool;  # SO_RCVTIMEO / SO_SNDTIMEO are set on it (socket(7): a signal
  sendTimeout @6 :Bool;     # then ends a blocking call with EINTR even under SA_RESTART).
  flags @7 :StatusFlags;    # Its description's access mode (`path`: an O_PATH fd) and status
                            # flags, as F_GETFL gives them. Unset (an older agent): not known.
}

enum ShutdownHow {
  read @0;
  write @1;
  both @2;
}

struct SpawnRequest {
  dir @0 :Node;             # `path` resolves against it when relative (execveat's dirfd).
  path @1 :Data;
  emptyPath @2 :Bool;       # AT_EMPTY_PATH: run `dir` itself.
  noFollow @3 :Bool;        # AT_SYMLINK_NOFOLLOW
  argv @4 :List(Data);
  envp @5 :List(Data);
  cwd @6 :Node;             # The process's working directory (a directory node).
  umask @7 :UInt32;
  fds @8 :List(ChildFd);    # Every other fd of the new process is closed.
  terminalRows @9 :UInt16;  # The window size of the `terminal` fds' pseudo-terminal (0: unknown,
  terminalCols @10 :UInt16; # left as the kernel makes it).
  credentials @11 :UInt32;  # Session.defineCredentials id the program starts with; 0: the
                            # agent's own (as before).
  keepStdinReader @12 :Bool;
  # With a pipeToChild fd 0: the agent keeps a reader of that pipe (which never reads), so that
  # Process.stdinUnread can say how much of what was written the program left unread. Asked when
  # stdin is a regular file here, whose position the stub then puts back after what the program
  # consumed (a program that never reads its stdin takes nothing from it, as natively).
}

struct ChildFd {
  # One fd of the new process.
  fd @0 :Int32;
  union {
    node @1 :Node;          # This session's node, dup'ed in place (a remote fd kept across exec).
    pipeToChild @2 :Void;   # A pipe the child reads (its stdin); the agent's end is in `stdio`.
    pipeFromChild @3 :Void; # A pipe the child writes; reads of the agent's end return EOF once
                            # the process has exited and the pipe is empty, even when a
                            # descendant still holds the write end.
    devNull @4 :Void;       # /dev/null, opened read-write on the agent.
    sameAs @5 :Int32;       # The same open file description as this child fd (listed too):
                            # `2>&1` to one local pipe keeps stdout and stderr in order.
    terminal @6 :Void;      # The slave of a new pseudo-terminal on the agent, which becomes the
                            # process's controlling terminal (it runs in a session of its own),
                            # as `ssh -t` gives one. Every `terminal` fd of the list shares the one
                            # pseudo-terminal; its master is in `stdio` once, for the lowest such
                            # fd: write the program's input to it, read its output. Reads return
                            # EOF once the process has exited and nothing is left to read.
  }
}

struct StdioPipe {
  fd @0 :Int32;             # The child fd it serves.
  node @1 :Node;            # The agent's end: write to it (stdin) or read from it.
}

interface Process {
  # A process the agent spawned. Dropping the last reference does not kill it; the session's end
  # does.
  wait @0 () -> (result :Int64, status :ExitStatus);
  # Blocks until the process ends (cancellable); then answers at once, every time.
  kill @1 (signal :Int32) -> (result :Int64);
  # Sends a signal (Linux numbering) to the process; 0 after it has ended (it is reaped).
  pid @2 () -> (pid :Int32);
  # Its pid on the agent's host (for logs and tests).
  stdinUnread @3 () -> (result :Int64);
  # The bytes left unread in its stdin pipe (FIONREAD on the reader spawn kept for
  # keepStdinReader), then that reader is closed; -ENOENT when none was kept. Asked once the
  # stub has stopped pumping and the process has ended, so the count is final.
}

struct ExitStatus {
  union {
    exited @0 :UInt8;       # exit code
    signaled @1 :Int32;     # the signal that killed it (Linux numbering)
  }
  coreDumped @2 :Bool;
}

enum AccessMode {
  readOnly @0;
  writeOnly @1;
  readWrite @2;
  path @3;                  # O_PATH
}

struct OpenHow {
  access @0 :AccessMode;
  create @1 :Bool;
  exclusive @2 :Bool;
  noCtty @3 :Bool;
  truncate @4 :Bool;
  append @5 :Bool;
  nonBlock @6 :Bool;
  dsync @7 :Bool;
  sync @8 :Bool;
  direct @9 :Bool;
  directory @10 :Bool;
  noFollow @11 :Bool;
  noAtime @12 :Bool;
  closeOnExec @13 :Bool;    # Recorded only: the tracer keeps cloexec on its placeholder.
  tmpFile @14 :Bool;
  async @15 :Bool;
  largeFile @16 :Bool;
  mode @17 :UInt32;         # Permission bits (07777) for create/tmpFile; the umask is applied by the tracer.
  resolveNoXdev @18 :Bool;  # openat2 RESOLVE_* flags.
  resolveNoMagicLinks @19 :Bool;
  resolveNoSymlinks @20 :Bool;
  resolveBeneath @21 :Bool;
  resolveInRoot @22 :Bool;
  resolveCached @23 :Bool;
  reopen @24 :Bool;         # Open the node itself anew (what opening /proc/self/fd/N does);
                            # the path must be empty.
}

enum FileType {
  unknown @0;
  regular @1;
  directory @2;
  symlink @3;
  charDevice @4;
  blockDevice @5;
  fifo @6;
  socket @7;
}

struct Timestamp {
  sec @0 :Int64;
  nsec @1 :UInt32;
}

struct Statx {
  # statx(2) fields; `mode` holds S_IFMT type bits and permissions (universal values).
  mask @0 :UInt32;          # STATX_* bits: the generic values, identical on every Linux arch.
  blksize @1 :UInt32;
  attributes @2 :UInt64;
  nlink @3 :UInt32;
  uid @4 :UInt32;
  gid @5 :UInt32;
  mode @6 :UInt32;
  ino @7 :UInt64;
  size @8 :UInt64;
  blocks @9 :UInt64;        # 512-byte units.
  attributesMask @10 :UInt64;
  atime @11 :Timestamp;
  btime @12 :Timestamp;
  ctime @13 :Timestamp;
  mtime @14 :Timestamp;
  rdevMajor @15 :UInt32;
  rdevMinor @16 :UInt32;
  devMajor @17 :UInt32;
  devMinor @18 :UInt32;
  mntId @19 :UInt64;
}

struct StatFlags {
  emptyPath @0 :Bool;       # AT_EMPTY_PATH: the node itself when the path is empty.
  noFollow @1 :Bool;        # AT_SYMLINK_NOFOLLOW
  noAutomount @2 :Bool;
  forceSync @3 :Bool;       # AT_STATX_FORCE_SYNC
  dontSync @4 :Bool;        # AT_STATX_DONT_SYNC
}

struct Statfs {
  type @0 :Int64;           # f_type magic (EXT4_SUPER_MAGIC ...).
  bsize @1 :Int64;
  blocks @2 :UInt64;
  bfree @3 :UInt64;
  bavail @4 :UInt64;
  files @5 :UInt64;
  ffree @6 :UInt64;
  fsid0 @7 :Int32;
  fsid1 @8 :Int32;
  namelen @9 :Int64;
  frsize @10 :Int64;
  flags @11 :Int64;         # ST_* mount flags (generic values).
}

struct Dirent {
  ino @0 :UInt64;
  off @1 :Int64;            # Opaque position after this entry (d_off).
  type @2 :UInt8;           # DT_* (universal values).
  name @3 :Data;
}

enum Whence {
  set @0;
  cur @1;
  end @2;
  data @3;
  hole @4;
}

struct RwFlags {
  # preadv2/pwritev2 RWF_* flags.
  hipri @0 :Bool;
  dsync @1 :Bool;
  sync @2 :Bool;
  noWait @3 :Bool;
  append @4 :Bool;
}

struct TimeSpec {
  union {
    now @0 :Void;           # UTIME_NOW
    omit @1 :Void;          # UTIME_OMIT
    time @2 :Timestamp;
  }
}

struct StatusFlags {
  # fcntl F_GETFL / F_SETFL: the open file description's status flags.
  access @0 :AccessMode;    # Read-only for F_SETFL.
  append @1 :Bool;
  nonBlock @2 :Bool;
  async @3 :Bool;
  direct @4 :Bool;
  noAtime @5 :Bool;
  dsync @6 :Bool;
  sync @7 :Bool;
  largeFile @8 :Bool;
}

enum LockType {
  read @0;                  # F_RDLCK
  write @1;                 # F_WRLCK
  unlock @2;                # F_UNLCK
}

struct Flock {
  type @0 :LockType;
  whence @1 :Whence;        # set, cur or end only.
  start @2 :Int64;
  len @3 :Int64;
  pid @4 :Int32;            # For F_GETLK answers: the holder (-1 for OFD locks).
}

enum LockCmd {
  getLk @0;
  setLk @1;
  setLkW @2;                # Blocks until granted.
  ofdGetLk @3;
  ofdSetLk @4;
  ofdSetLkW @5;
}

enum CopyKind {
  sendfile @0;
  copyFileRange @1;
}

struct Xattr {
  noFollow @0 :Bool;        # The l*xattr variants.
  create @1 :Bool;          # XATTR_CREATE
  replace @2 :Bool;         # XATTR_REPLACE
}

struct NodeInfo {
  type @0 :FileType;        # Lets the tracer pick pipelining/readahead per file type.
  readAhead @1 :Bool;       # openAt only: a regular file, non-empty when opened, on a file
                            # system whose content is stored (not proc, sysfs, debugfs and
                            # their kin, which make it per read): the client may read ahead.
                            # Absent (an older agent): false.
}

interface Node {
  # An open file description on the agent; also the directory for the *At calls.
  # Path arguments are resolved against this node when relative and against the session's root
  # when absolute; an empty path with `emptyPath` means the node itself.

  close @0 () -> (result :Int64);
  info @1 () -> (result :Int64, info :NodeInfo);

  openAt @2 (path :Data, how :OpenHow) -> (result :Int64, node :Node, info :NodeInfo);
  read @3 (count :UInt64) -> (result :Int64, data :Data);
  pread @4 (count :UInt64, offset :Int64, flags :RwFlags) -> (result :Int64, data :Data);
  # offset -1 with flags: preadv2 at the current position.
  write @5 (data :Data, fileSizeLimit :UInt64 = 0xffffffffffffffff) -> (result :Int64);
  pwrite @6 (data :Data, offset :Int64, flags :RwFlags,
             fileSizeLimit :UInt64 = 0xffffffffffffffff) -> (result :Int64);
  # fileSizeLimit: the program's RLIMIT_FSIZE (all ones: none, also from older clients). On a
  # regular file the agent applies it as the program's kernel would: a write that starts at or
  # past it fails with EFBIG (the client raises SIGXFSZ), one that would cross it is cut short.
  seek @7 (offset :Int64, whence :Whence) -> (result :Int64);

  statAt @8 (path :Data, flags :StatFlags, mask :UInt32) -> (result :Int64, stat :Statx);
  statfs @9 (path :Data) -> (result :Int64, statfs :Statfs);
  # Empty path: fstatfs of the node.
  accessAt @10 (path :Data, mode :UInt8, eaccess :Bool, noFollow :Bool, emptyPath :Bool)
      -> (result :Int64);
  # mode: R_OK=4 W_OK=2 X_OK=1, F_OK=0.
  getdents @11 (maxBytes :UInt32) -> (result :Int64, entries :List(Dirent));
  # Returns at most what fits in maxBytes of linux_dirent64 records (the tracer re-encodes them
  # with the same sizes), so no entry is consumed without being delivered.
  readlinkAt @12 (path :Data, size :UInt64) -> (result :Int64, target :Data);
  mkdirAt @13 (path :Data, mode :UInt32) -> (result :Int64);
  mknodAt @14 (path :Data, mode :UInt32, rdevMajor :UInt32, rdevMinor :UInt32) -> (result :Int64);
  unlinkAt @15 (path :Data, removeDir :Bool) -> (result :Int64);
  renameAt @16 (oldPath :Data, newDir :Node, newPath :Data,
                noReplace :Bool, exchange :Bool, whiteout :Bool) -> (result :Int64);
  linkAt @17 (oldPath :Data, newDir :Node, newPath :Data, follow :Bool, emptyPath :Bool,
              throughFd :Bool) -> (result :Int64);
  # throughFd (added as the sixth parameter): link this node itself, as linkat of its
  # /proc/self/fd/N magic link with AT_SYMLINK_FOLLOW does on the client (the O_TMPFILE idiom:
  # no CAP_DAC_READ_SEARCH needed; ENOENT for a file opened O_TMPFILE|O_EXCL or unlinked).
  # `oldPath` is then empty. An older agent ignores it and answers ENOENT.
  symlinkAt @18 (target :Data, path :Data) -> (result :Int64);
  chmodAt @19 (path :Data, mode :UInt32, noFollow :Bool, emptyPath :Bool) -> (result :Int64);
  chownAt @20 (path :Data, uid :Int64, gid :Int64, noFollow :Bool, emptyPath :Bool)
      -> (result :Int64);
  # uid/gid -1: unchanged.
  truncateAt @21 (path :Data, length :Int64, emptyPath :Bool,
                  fileSizeLimit :UInt64 = 0xffffffffffffffff) -> (result :Int64);
  # Empty path + emptyPath: ftruncate of the node.
  fallocate @22 (mode :UInt32, offset :Int64, length :Int64,
                 fileSizeLimit :UInt64 = 0xffffffffffffffff) -> (result :Int64);
  # mode: FALLOC_FL_* (generic values).
  # fileSizeLimit (both; added as the fourth parameter): the program's RLIMIT_FSIZE, as for
  # write. Growing a regular file past it fails with EFBIG once the kernel's other checks have
  # passed (the client raises SIGXFSZ), as inode_newsize_ok does; shrinking is not limited,
  # nor a fallocate with FALLOC_FL_KEEP_SIZE except on tmpfs, whose fallocate limits it too.
  fsync @23 (dataOnly :Bool) -> (result :Int64);
  utimensAt @24 (path :Data, atime :TimeSpec, mtime :TimeSpec, noFollow :Bool, emptyPath :Bool)
      -> (result :Int64);
  getXattr @25 (path :Data, name :Data, size :UInt64, flags :Xattr, emptyPath :Bool)
      -> (result :Int64, value :Data);
  setXattr @26 (path :Data, name :Data, value :Data, flags :Xattr, emptyPath :Bool)
      -> (result :Int64);
  listXattr @27 (path :Data, size :UInt64, flags :Xattr, emptyPath :Bool)
      -> (result :Int64, names :Data);
  removeXattr @28 (path :Data, name :Data, flags :Xattr, emptyPath :Bool) -> (result :Int64);
  getFlags @29 () -> (result :Int64, flags :StatusFlags);
  setFlags @30 (flags :StatusFlags) -> (result :Int64);
  lock @31 (cmd :LockCmd, lock :Flock, owner :Int32) -> (result :Int64, lock :Flock);
  # POSIX record locks (getLk, setLk, setLkW) belong to a process, not to the agent: `owner` is
  # the traced process (its pid on A), and the agent keeps them apart so that two traced
  # processes conflict as they would on one machine. F_GETLK answers name the owner as pid.
  flock @32 (exclusive :Bool, unlock :Bool, nonBlock :Bool) -> (result :Int64);
  # Neither exclusive nor unlock: LOCK_SH.
  copyTo @33 (dst :Node, count :UInt64, srcOffset :Int64, dstOffset :Int64, kind :CopyKind)
      -> (result :Int64, srcOffset :Int64, dstOffset :Int64);
  # Offsets -1: use and advance the file positions. Otherwise explicit, returned advanced.
  path @34 (asLink :Bool) -> (result :Int64, path :Data);
  # The node's current path as seen inside the agent's root (getcwd: ENOENT once deleted, or
  # for what is no file system object). asLink (added as its first parameter): the text of its
  # /proc/self/fd/N magic link instead, for readlink: a deleted file's path with " (deleted)",
  # and "socket:[...]", "pipe:[...]", "anon_inode:[...]" as B's kernel writes them.
  chdirCheck @35 () -> (result :Int64);
  # What chdir(2) would say about this directory node: ENOTDIR, EACCES (no search permission).
  releaseLocks @36 (owner :Int32) -> (result :Int64);
  # Process `owner` closed an fd of this node's file: POSIX drops all its locks on that file.

  ioctl @37 (request :UInt64, arg :UInt64, pointer :Bool, data :Data, outSize :UInt32)
      -> (result :Int64, data :Data);
  # ioctl(2) with the request number of the agent's ABI, which the client has checked is its
  # own (raw payload bytes are only meaningful between equal ABIs). `pointer` false: `arg` is
  # passed by value. `pointer` true: the agent passes a buffer of max(data.size, outSize) bytes
  # holding `data` (zero-filled after it) and answers its first `outSize` bytes. The client only
  # sends requests whose payload holds no pointers (see tracer/ioctl_table.h).

  # Sockets. Each answers what the syscall gives on the agent's fd, also when the node is not a
  # socket (ENOTSOCK). Calls that may wait (connect, accept, send on a full buffer, recv) run on
  # a worker and are cancellable (EINTR) unless the socket is non-blocking or `dontWait` is set.
  # `dir` is the directory a relative unix path resolves against (the program's cwd on the
  # agent); absent, the agent's root. Unix paths are confined under --root like any path.

  bind @38 (addr :SockAddr, dir :Node) -> (result :Int64);
  connect @39 (addr :SockAddr, dir :Node) -> (result :Int64);
  listen @40 (backlog :Int32) -> (result :Int64);
  accept @41 (nonBlock :Bool) -> (result :Int64, node :Node, addr :SockAddr);
  # accept4(2): the new connection, and its peer's address.
  sendMsg @42 (data :Data, addr :SockAddr, dir :Node, flags :MsgFlags, control :List(Cmsg),
               fds :List(Node))
      -> (result :Int64);
  # `addr` absent: the connected peer. Fds cross as nodes: each int of an SCM_RIGHTS message
  # in `control` is an index into `fds` (nodes of this session), which the agent replaces with
  # that node's fd; any other value (-1 for a bad fd), a foreign node or a closed one becomes
  # -1, so the kernel answers EBADF where it would. Raw fd numbers of the agent never reach
  # the kernel.
  recvMsg @43 (count :UInt64, flags :MsgFlags, controlSize :UInt32)
      -> (result :Int64, data :Data, addr :SockAddr, flags :MsgFlags, control :List(Cmsg),
          droppedFds :UInt32, fds :List(PassedFd));
  # `result` is what recvmsg(2) returns (with `trunc`, a datagram's full length, which may
  # exceed `count`); `data` holds at most `count` bytes. `addr` is absent when the kernel gave
  # none. Passed fds (SCM_RIGHTS) become new nodes of the session, in order, in `fds`; their
  # message is left out of `control` (the client lays it out after the others, as the kernel
  # does). Fds past --max-fds are closed on the agent, counted in `droppedFds`, and reported
  # as `ctrunc`, as the kernel does when it cannot install them.
  shutdown @44 (how :ShutdownHow) -> (result :Int64);
  getSockOpt @45 (level :Int32, name :Int32, size :UInt32) -> (result :Int64, value :Data);
  # level/name in the agent's numbering; the value's bytes as the kernel wrote them.
  setSockOpt @46 (level :Int32, name :Int32, value :Data) -> (result :Int64);
  sockName @47 (peer :Bool) -> (result :Int64, addr :SockAddr);
  # getsockname(2), or getpeername(2) with `peer`.
  interrupt @48 () -> ();
  # Interrupts every blocking call of this session running on this node (a recv, an accept, a
  # FIFO read ... on a worker): each returns -EINTR unless it already has its result, which it
  # then returns. The calls are not cancelled: their answers come as usual. The tracer's
  # two-phase interrupt (a signal for a thread parked in such a call): the call's answer says
  # whether the kernel on B had already completed it. An agent without it answers
  # "unimplemented"; the client then drops the call (the answer may be lost).
  asCaller @49 (credentials :UInt32) -> (node :Node);
  # This node, for calls made with the credentials `credentials` names (defineCredentials):
  # each call on the answer runs with the set's fs ids, supplementary groups and effective
  # capabilities on the agent thread that performs it (accessAt without `eaccess` with its real
  # ids, as access(2) does), so B's kernel decides permissions and owners as it would for the
  # program. Only sent while a thread's credentials differ from those the program started with,
  # and only to an agent that assumesCredentials; it pipelines, so it costs no round trip.
  # Nodes passed as arguments (newDir, dst ...) are plain nodes. An unknown id: calls on the
  # answer fail (an exception: the client's bug).
  lease @50 (set :Bool, type :LockType, holder :LeaseHolder) -> (result :Int64, type :LockType);
  # fcntl F_GETLEASE (`set` false: `type` answers the lease this description holds, or during a
  # break the type it is being broken to, as B's kernel says) and F_SETLEASE (`set` true). B's
  # kernel makes its own checks (the caller's fs uid against the owner, or CAP_LEASE: send it
  # through asCaller; a regular file; conflicting opens) and its errno is the answer.
  # A lease B grants is held by the agent on this description when the client passes `holder`
  # and the agent can watch for breaks: when B's kernel breaks it (another process on B opens or
  # truncates the file) the agent calls holder.broken, and the client raises in the program the
  # signal B's kernel would have raised; the program's answer (F_SETLEASE F_UNLCK or F_RDLCK)
  # comes back through this method and lets the breaker on B go on. Unanswered, B's
  # lease-break-time applies. Closing the node (or the session's end) releases the lease.
  # Without `holder` (an older client), or from an agent that cannot watch for breaks, a lease B
  # would grant is given back at once and refused with EINVAL, as a file system that cannot hold
  # leases refuses it. An agent without the method answers "unimplemented"; the client then
  # answers EINVAL too.
}

interface LeaseHolder {
  # The client's side of a lease B granted (Node.lease with `holder`), one per lease taken.
  broken @0 (band :UInt32) -> ();
  # B's kernel broke the lease: its signal reached the agent with si_code POLL_MSG and this
  # si_band. The client raises the program's own signal for the file (F_SETSIG, else SIGIO) in
  # the description's owner (F_SETOWN, by default the process that set the lease). Sent once
  # per break; the answer means nothing.
}
