"""Steer the calling thread between this machine and sbrun's targets.

Under sbrun(1) every traced program has a control fd whose number is in the environment
variable SB_CONTROL_FD; this module speaks its line protocol (docs/protocol.md, "The control
fd (SB_CONTROL_FD)"). Standard library only.

    import platform, splitbrain

    with splitbrain.remote("b"):      # this thread's IO goes to target b
        print(platform.node())        # b's hostname
        with splitbrain.local():      # ... except in here: this machine again
            ...
    print(splitbrain.current())       # "local" or the name of the target the thread is in

Scopes belong to the calling OS thread (a stack per thread, as in sbrun); new threads and child
processes start with a copy of their creator's stack. Coroutines and greenlets that share one
OS thread share its scope.

Outside sbrun every call except available() raises NotUnderSbrun. The standard library caches
some answers per process (platform.uname(), platform.node()): every scope change here clears
those caches, so inside `with splitbrain.remote("b")` platform.node() is b's name, and after the
block this machine's again.

A pytest plugin comes with the package (splitbrain.pytest_plugin, registered as a pytest11
entry point): `@pytest.mark.remote("b")` runs a test's body in target b, and the `splitbrain`
fixture gives a test this module.
"""

import errno as _errno
import fcntl as _fcntl
import os as _os
import sys as _sys

__all__ = ["available", "current", "enter", "enter_local", "exit", "remote", "local",
           "NotUnderSbrun", "UnknownTarget", "ENV"]

ENV = "SB_CONTROL_FD"   # the environment variable that holds the control fd's number
NAME_MAX = 255          # the longest target name, in bytes (as in splitbrain.h)


class NotUnderSbrun(RuntimeError):
    """The program does not run under sbrun: SB_CONTROL_FD is not set, or names no open fd."""


class UnknownTarget(OSError, LookupError):
    """enter() was given a name that sbrun has no target for (errno ENOENT). Also a LookupError."""


def _not_under_sbrun():
    value = _os.environ.get(ENV)
    if value is None:
        why = f"{ENV} is not set"
    elif not (value.isascii() and value.isdigit()):
        why = f"{ENV}={value!r} is not a file descriptor number"
    else:
        why = f"{ENV}={value!r} is not an open file descriptor"
    return NotUnderSbrun(f"splitbrain: not running under sbrun ({why})")


def _control_fd():
    value = _os.environ.get(ENV)
    if not value or not (value.isascii() and value.isdigit()) or int(value) > 2**31 - 1:
        raise _not_under_sbrun()
    return int(value)


def _command(line, name=None):
    """Writes one command line; maps the control fd's errors to exceptions."""
    fd = _control_fd()
    data = line.encode(errors="surrogateescape")
    try:
        n = _os.write(fd, data)   # retried on EINTR by Python itself (PEP 475)
    except OSError as e:
        if e.errno == _errno.EBADF:
            raise _not_under_sbrun() from None
        verb = line.split()[0]
        if verb == "enter" and e.errno == _errno.ENOENT:
            if name is None:
                raise UnknownTarget(e.errno, "splitbrain: no target to enter "
                                    "(sbrun was given none)") from None
            raise UnknownTarget(e.errno, f"splitbrain: no target named {name!r}") from None
        if verb == "enter" and e.errno == _errno.EINVAL:
            raise OSError(e.errno, f"splitbrain: invalid target name {name!r}") from None
        if verb == "exit" and e.errno == _errno.EINVAL:
            raise OSError(e.errno, "splitbrain: exit without a matching enter "
                          "(the thread's scope stack is empty)") from None
        raise OSError(e.errno, f"splitbrain: {line.strip()!r} failed: {e.strerror}") from None
    if n != len(data):
        raise OSError(_errno.EIO, f"splitbrain: short write of {line.strip()!r} ({n} bytes)")
    _forget_cached_identity()


def _forget_cached_identity():
    """Clears what the standard library cached of the host it asked: the answer depends on the
    scope now. (platform caches uname() per process; socket.gethostname() is not cached.)"""
    platform = _sys.modules.get("platform")
    if platform is None:
        return
    # uname() (and node(), system(), release() ... built on it), freedesktop_os_release().
    for cache in ("_uname_cache", "_os_release_cache"):
        if hasattr(platform, cache):
            setattr(platform, cache, None)


def _refuse(exc):
    """Raises exc, or NotUnderSbrun when the fd is not open: a bad argument in a program that is
    not traced is still "not running under sbrun"."""
    if not available():
        raise _not_under_sbrun()
    raise exc


def available():
    """True when running under sbrun (SB_CONTROL_FD names an open fd)."""
    try:
        fd = _control_fd()
    except NotUnderSbrun:
        return False
    try:
        _fcntl.fcntl(fd, _fcntl.F_GETFD)
    except OSError as e:
        return e.errno != _errno.EBADF
    return True


def current():
    """The calling thread's current scope: a target's name, or "local"."""
    fd = _control_fd()
    try:
        data = _os.read(fd, NAME_MAX + 2)
    except OSError as e:
        if e.errno == _errno.EBADF:
            raise _not_under_sbrun() from None
        raise
    if not data.endswith(b"\n"):
        raise OSError(_errno.EIO, f"splitbrain: the control fd answered {data!r}, not one line")
    return data[:-1].decode(errors="surrogateescape")


def enter(name=None):
    """Pushes target `name` (None: the first target given to sbrun) onto this thread's stack."""
    _control_fd()   # outside sbrun, NotUnderSbrun comes first (see also _refuse)
    if name is None:
        _command("enter\n")
        return
    if not isinstance(name, str):
        raise TypeError(f"splitbrain: a target name is a str, not {type(name).__name__}")
    raw = name.encode(errors="surrogateescape")
    if not raw or any(b <= 0x20 for b in raw):
        _refuse(OSError(_errno.EINVAL, f"splitbrain: invalid target name {name!r}"))
    if len(raw) > NAME_MAX:
        _refuse(OSError(_errno.ENAMETOOLONG, f"splitbrain: invalid target name {name!r} "
                        f"(longer than {NAME_MAX} bytes)"))
    _command(f"enter {name}\n", name)


def enter_local():
    """Pushes the local scope (this machine) onto this thread's stack."""
    _command("local\n")


def exit():   # noqa: A001 (module attribute: splitbrain.exit())
    """Pops this thread's innermost scope (an enter()'s or an enter_local()'s)."""
    _command("exit\n")


class _Scope:
    """A context manager: pushes on __enter__, pops on __exit__. Reusable, not reentrant."""

    def __init__(self, push, what):
        self._push = push
        self._what = what

    def __enter__(self):
        self._push()
        return self

    def __exit__(self, *exc):
        exit()
        return False

    def __repr__(self):
        return f"<splitbrain.{self._what}>"


def remote(name=None):
    """A context manager that runs its block in target `name` (None: the first target)."""
    return _Scope(lambda: enter(name), f"remote({name!r})")


def local():
    """A context manager that runs its block on this machine, even inside a remote scope."""
    return _Scope(enter_local, "local()")
