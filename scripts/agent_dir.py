#!/usr/bin/env python3
"""The agents sbrun deploys to ssh:// targets (tracer/deploy.h), one file per machine named
sbagent-ARCH, in one directory.

  agent_dir.py link DIR ARCH=PATH...   the build tree's directory (tracer/meson.build): DIR is
                                       made afresh with symlinks DIR/sbagent-ARCH -> PATH (a
                                       cross build's agent may not exist yet: sbrun then treats
                                       that arch as missing)
  agent_dir.py install ARCH=PATH...    run by `meson install`: copies each PATH, which must
                                       exist, to $MESON_INSTALL_DESTDIR_PREFIX/lib/splitbrain/
                                       agents/sbagent-ARCH (mode 0755)
"""
import os
import shutil
import sys


def pairs(args):
    """ARCH=PATH arguments; a later one for the same ARCH wins (-Dbundle_agents over the
    build tree's defaults)."""
    out = {}
    for a in args:
        arch, sep, path = a.partition("=")
        if not sep or not arch or not path or "/" in arch:
            sys.exit(f"agent_dir.py: '{a}' is not ARCH=PATH")
        out[arch] = os.path.abspath(path)
    return out.items()


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "link":
        d = sys.argv[2]
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for arch, path in pairs(sys.argv[3:]):
            os.symlink(path, os.path.join(d, f"sbagent-{arch}"))
    elif len(sys.argv) >= 2 and sys.argv[1] == "install":
        prefix = os.environ.get("MESON_INSTALL_DESTDIR_PREFIX")
        if not prefix:
            sys.exit("agent_dir.py install runs under `meson install` only")
        d = os.path.join(prefix, "lib", "splitbrain", "agents")
        os.makedirs(d, exist_ok=True)
        for arch, path in pairs(sys.argv[2:]):
            if not os.path.isfile(path):
                sys.exit(f"agent_dir.py: no agent at {path} for {arch}: build it first "
                         "(docs/boards.md), or drop it from -Dbundle_agents")
            dest = os.path.join(d, f"sbagent-{arch}")
            shutil.copyfile(path, dest)
            os.chmod(dest, 0o755)
            print(f"Installing {path} to {dest}")
    else:
        sys.exit(__doc__)


main()
