/* How sb-stub talks to sbrun (DESIGN D7). Plain C: the stub includes it too.
 *
 * A program that sbrun runs on the remote is represented here by sb-stub, exec'd in its place.
 * The stub asks sbrun for what it needs through one system call number that no kernel has:
 * sbrun traps every unknown number, recognises this one in a stub process and answers it; run
 * anywhere else, it fails with ENOSYS, so the stub can tell it was not started by sbrun. */

#ifndef SB_STUB_PROTOCOL_H
#define SB_STUB_PROTOCOL_H

#define SB_STUB_SYSCALL 0x5342 /* 'SB': far above any real x86-64 syscall number */

enum {
  /* sb_stub(SB_STUB_FD, n): an fd for the remote process's fd n (0, 1 or 2) when it is a pipe
   * the stub must pump: writable for 0, readable for 1 and 2 (reads end with EOF once the remote
   * process has exited and the pipe is drained). -ENOENT when fd n needs no pump. */
  SB_STUB_FD = 1,
  /* sb_stub(SB_STUB_WAIT): blocks until the remote process ends; returns its status encoded as
   * waitpid(2) does (exit code << 8, or the signal number). Interrupted by a signal: EINTR. */
  SB_STUB_WAIT = 2,
  /* sb_stub(SB_STUB_TERMINAL): an fd for the master of the remote process's pseudo-terminal,
   * when sbrun gave it one (its stdin is a terminal here): write its input to it, read its
   * output (EOF once it has exited and all is read), TIOCSWINSZ it. Then SB_STUB_FD answers
   * -ENOENT for fd 0, and for fds 1 and 2 on the terminal. -ENOENT when it has none. */
  SB_STUB_TERMINAL = 3,
  /* sb_stub(SB_STUB_STDIN_UNREAD): after SB_STUB_WAIT, with the stdin pump stopped: how many of
   * the bytes it wrote to the remote process's stdin pipe that process left unread, when sbrun
   * asked the agent to count them (stdin is a regular file here); then the stub puts the file
   * position back after what the program consumed. -ENOENT when nothing was counted. */
  SB_STUB_STDIN_UNREAD = 4,
};

#endif
