#!/usr/bin/env python3
"""A fully static sbagent serves sbrun from a root that holds nothing but itself.

Issue 18: one agent file must run on a board with no userland of ours. The proof here: the
binary has no ELF interpreter (so no dynamic loader and no shared library is ever opened), and
`sbrun --target 'exec:... chroot ROOT /sbagent --stdio' -- ls -a /` lists exactly `.`, `..`,
`proc` and `sbagent`: the agent ran inside ROOT, which holds only that file (and the kernel's
/proc mounted on an empty directory), and answered the calls.

    static_root.py --sbrun build/tracer/sbrun --agent build/agent/sbagent-static

Exit status: 0 passed, 1 failed, 77 skipped (not root: chroot needs it).
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

PT_INTERP = 3


def interpreter(path):
    """The ELF program interpreter named in `path`, or None for a static binary."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise SystemExit(f"FAIL: {path} is not an ELF file")
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        at = phoff + i * phentsize
        p_type, = struct.unpack_from(endian + "I", data, at)
        if p_type == PT_INTERP:
            off, size = (struct.unpack_from(endian + "QQ", data, at + 8)[0],
                         struct.unpack_from(endian + "Q", data, at + 32)[0]) if is64 else \
                        (struct.unpack_from(endian + "I", data, at + 4)[0],
                         struct.unpack_from(endian + "I", data, at + 16)[0])
            return data[off:off + size].rstrip(b"\0").decode()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sbrun", required=True)
    ap.add_argument("--agent", required=True, help="the static sbagent")
    args = ap.parse_args()
    interp = interpreter(args.agent)
    if interp is not None:
        print(f"FAIL: {args.agent} is not static: it names the interpreter {interp}")
        return 1
    print(f"{args.agent}: no ELF interpreter (static)")
    if os.geteuid() != 0:
        print("SKIP: chroot needs root")
        return 77
    tmp = tempfile.mkdtemp(prefix="sb-static-")
    try:
        root = os.path.join(tmp, "root")
        os.mkdir(root, 0o755)
        shutil.copy(args.agent, os.path.join(root, "sbagent"))
        os.chmod(os.path.join(root, "sbagent"), 0o755)
        size = os.path.getsize(os.path.join(root, "sbagent"))
        # /proc is the kernel's, not a userland: the agent names its fds through
        # /proc/self/fd (getcwd, paths of directories). It is mounted on an empty mount point in
        # a mount namespace of the agent's own, so nothing shows outside.
        os.mkdir(os.path.join(root, "proc"), 0o555)
        target = ("exec:unshare --mount --propagation private sh -c "
                  f"'mount -t proc proc {root}/proc && exec chroot {root} /sbagent --stdio'")
        argv = [os.path.abspath(args.sbrun), "--target", target, "--", "sh", "-c",
                "ls -a /; stat -c '%n %s' /sbagent; cat /etc/os-release >/dev/null; echo rc=$?"]
        # sh is the launched program and stays here; the programs it starts would run on B,
        # where there are none: --local keeps /usr/bin (and the /bin link to it) on A, so ls,
        # stat and cat run here and only their file calls reach the agent. The remote cwd is
        # B's root: the default, this cwd, does not exist there.
        argv[3:3] = ["--local", "/usr/bin", "--local", "/bin", "--remote-cwd", "/"]
        print("$", " ".join(argv))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL, cwd=tmp)
        print(f"exit {r.returncode}\n--- stdout ---\n{r.stdout}--- stderr ---\n{r.stderr}--- end ---")
        want = [".", "..", "proc", "sbagent", f"/sbagent {size}"]
        lines = r.stdout.splitlines()
        if r.returncode != 0 or lines[:5] != want or lines[-1] != "rc=1":
            print(f"FAIL: expected {want}, then no /etc/os-release (rc=1) in the empty root")
            return 1
        print("PASS: the static agent served sbrun from a root holding only itself")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
