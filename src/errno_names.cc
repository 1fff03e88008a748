#include "errno_names.h"

#include <errno.h>
#include <fmt/format.h>
#include <string.h>

#include <string>

namespace sb {

namespace {

// Indexed by errno number, 1..133 (asm-generic/errno-base.h and errno.h). Written out rather than
// taken from <errno.h> so the names follow the wire numbering whatever the host.
constexpr const char* GENERIC_NAMES[] = {
    nullptr,  // 0: not an error
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    nullptr,  // 41: unused
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    nullptr,  // 58: unused
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
};
constexpr int GENERIC_COUNT = sizeof(GENERIC_NAMES) / sizeof(GENERIC_NAMES[0]);

static_assert(GENERIC_COUNT == 134);
// strerror() describes host numbers; they must be the generic ones for the text to fit the name.
static_assert(ENOENT == 2 && EDEADLK == 35 && EOPNOTSUPP == 95 && EHWPOISON == 133,
              "this host does not use Linux's generic errno numbering");

struct InternalErrno {
  int number;
  const char* name;
  // What strace prints: these never reach a program, so libc has no text for them.
  const char* description;
};

// include/linux/errno.h: codes the kernel uses internally; a tracer sees the restart ones in the
// return register at a syscall-exit stop when a signal interrupted the call.
constexpr InternalErrno INTERNAL[] = {
    {512, "ERESTARTSYS", "To be restarted if SA_RESTART is set"},
    {513, "ERESTARTNOINTR", "To be restarted"},
    {514, "ERESTARTNOHAND", "To be restarted if no handler"},
    {515, "ENOIOCTLCMD", "No ioctl command"},
    {516, "ERESTART_RESTARTBLOCK", "Interrupted by signal"},
    {517, "EPROBE_DEFER", "Driver requests probe retry"},
    {518, "EOPENSTALE", "Open found a stale dentry"},
    {519, "ENOPARAM", "Parameter not supported"},
    {521, "EBADHANDLE", "Illegal NFS file handle"},
    {522, "ENOTSYNC", "Update synchronization mismatch"},
    {523, "EBADCOOKIE", "Cookie is stale"},
    {524, "ENOTSUPP", "Operation is not supported"},
    {525, "ETOOSMALL", "Buffer or request is too small"},
    {526, "ESERVERFAULT", "An untranslatable error occurred"},
    {527, "EBADTYPE", "Type not supported by server"},
    {528, "EJUKEBOX", "Request initiated, but will not complete before timeout"},
    {529, "EIOCBQUEUED", "iocb queued, will get completion event"},
    {530, "ERECALLCONFLICT", "Conflict with recalled state"},
    {531, "ENOGRACE", "NFS file lock reclaim refused"},
};

const InternalErrno* findInternal(int err) {
  for (auto& e: INTERNAL) {
    if (e.number == err) {
      return &e;
    }
  }
  return nullptr;
}

}  // namespace

kj::StringPtr errnoName(int err) {
  if (err > 0 && err < GENERIC_COUNT && GENERIC_NAMES[err] != nullptr) {
    return GENERIC_NAMES[err];
  }
  if (auto internal = findInternal(err)) {
    return internal->name;
  }
  return "EUNKNOWN";
}

kj::String formatSysResult(int64_t ret) {
  if (ret >= 0 || ret < -4095) {
    return kj::str(ret);
  }
  int err = static_cast<int>(-ret);
  const char* description = nullptr;
  if (auto internal = findInternal(err)) {
    description = internal->description;
  } else {
    // strerrordesc_np (glibc >= 2.32) is thread-safe and locale-independent, unlike strerror:
    // traces must read the same whatever the tracer's LANG.
    description = strerrordesc_np(err);
  }
  std::string text = description != nullptr
                         ? fmt::format("-1 {} ({})", errnoName(err).cStr(), description)
                         : fmt::format("-1 {} (Unknown error {})", errnoName(err).cStr(), err);
  return kj::heapString(text.data(), text.size());
}

}  // namespace sb
