"""Integration cases for issue 20: what `meson install` puts where, and that it works from there;
the agent under socket activation (sbagent --listen systemd, as sbagent.socket starts it).

run.py registers them (register()); they use its helpers through the module `h` it passes."""

import glob
import os
import shlex
import shutil
import socket
import stat
import subprocess
import time

h = None   # run.py, set by register()

# What a supervisor does for a socket unit (sd_listen_fds(3)): bind and listen, the socket as
# fd 3, LISTEN_FDS and LISTEN_PID (this very process, which then execs the agent).
ACTIVATE = """\
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
old = os.umask(0o177)
s.bind(path)
os.umask(old)
s.listen(64)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def build_dir(ctx):
    """The meson build directory sbrun was built in (BUILD/tracer/sbrun)."""
    d = os.path.dirname(os.path.dirname(os.path.abspath(ctx.sbrun)))
    if not os.path.exists(os.path.join(d, "meson-private", "coredata.dat")):
        raise h.Skip(f"{d} is not a meson build directory (run from `meson test`)")
    return d


def case_socket_activation(ctx):
    """sbagent --listen systemd serves the socket it was passed on fd 3 (LISTEN_FDS and
    LISTEN_PID, as sbagent.socket does): a real sbrun reads a file under its --root through it,
    and the socket file stays the supervisor's. Without a passed socket,
    with one meant for another process, or with --socket-mode, it refuses with a message that
    says what to do. The shipped units pass systemd-analyze verify when it is installed."""
    h.need_binary(ctx.sbagent, "sbagent")
    r = h.run([ctx.sbagent, "--listen", "systemd"], timeout=30)
    h.log(r.describe())
    h.check(r.rc != 0 and "no socket was passed" in r.err and "sbagent.socket" in r.err,
            "--listen systemd without LISTEN_FDS must say what to do")
    env = dict(h.ENV, LISTEN_FDS="1", LISTEN_PID="1")
    r = h.run([ctx.sbagent, "--listen", "systemd"], timeout=30, env=env)
    h.log(r.describe())
    h.check(r.rc != 0 and "not this one" in r.err, "a LISTEN_PID of another process")
    r = h.run([ctx.sbagent, "--listen", "systemd", "--socket-mode", "0660"], timeout=30)
    h.check(r.rc != 0 and "SocketMode=" in r.err, "--socket-mode with systemd must point to the "
            "unit\n" + r.describe())
    if ctx.native_only:
        return
    root = os.path.join(ctx.tmp, "root")
    os.makedirs(root)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("served through the passed socket\n")
    sock = os.path.join(ctx.tmp, "act.sock")
    logpath = os.path.join(ctx.tmp, "act.log")
    with open(logpath, "wb") as logf:
        agent = subprocess.Popen([h.SYS_PYTHON, "-c", ACTIVATE, sock, ctx.sbagent, "--listen",
                                  "systemd", "--root", root, "-v"],
                                 stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 env=h.ENV, start_new_session=True)

    def stop():
        if agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
    ctx.cleanups.append(stop)
    h.check(h.wait_for(lambda: os.path.exists(sock), 10), "the activator made no socket")
    h.check(stat.S_IMODE(os.stat(sock).st_mode) == 0o600, "the passed socket must be 0600")
    # python3 runs here; its open of /f.txt goes to the agent, confined to root.
    r = h.run([ctx.sbrun, "--target", "unix:" + sock, "--remote-cwd", "/", "--",
               h.SYS_PYTHON, "-c", "import os; print(open('/f.txt').read(), end=''); "
               "print(sorted(k for k in os.environ if k.startswith('LISTEN_')))"],
              timeout=60, cwd=ctx.tmp)
    h.log(r.describe())
    with open(logpath, errors="replace") as f:
        agent_log = f.read()
    h.log("--- agent ---\n" + agent_log)
    h.check(r.rc == 0 and r.out == "served through the passed socket\n[]\n",
            "a session through the passed socket failed")
    h.check("listening on systemd:unix:" + sock in agent_log,
            "the agent must say which passed socket it serves")
    stop()
    h.check(os.path.exists(sock), "the socket file is the supervisor's: the agent must leave it")
    analyze = "/usr/bin/systemd-analyze"
    units = [os.path.join(build_dir(ctx), "agent", "sbagent.service"),
             os.path.join(h.HERE, "..", "..", "agent", "systemd", "sbagent.socket")]
    if os.access(analyze, os.X_OK):
        # verify wants the units side by side and the ExecStart binary present.
        d = os.path.join(ctx.tmp, "units")
        os.makedirs(d)
        for u in units:
            with open(u) as f:
                text = f.read()
            with open(os.path.join(d, os.path.basename(u)), "w") as f:
                f.write(text)
        r = h.run([analyze, "verify", "--man=no", "--recursive-errors=no"]
                  + [os.path.join(d, os.path.basename(u)) for u in units], timeout=60)
        h.log(r.describe())
        problems = [l for l in (r.out + r.err).splitlines()
                    if "sbagent" in l and "Command" not in l]
        h.check(not problems, "systemd-analyze verify found problems in the units")
    else:
        h.log("[units] systemd-analyze is not installed: the units were not verified")


# sh runs here; `uname` is started on B (through sb-stub), in the demo root; the shell's own
# read of /etc/hostname goes to B too.
DEMO_SCRIPT = "uname -n; read line < /etc/hostname; echo $line"


def make_demo_root(root):
    """B's root for the local demo: its /etc/hostname, and /usr/bin/uname with the libraries
    it loads, so that a program can be started there."""
    os.makedirs(root + "/etc")
    with open(root + "/etc/hostname", "w") as f:
        f.write("installed-b\n")
    r = h.run(["ldd", "/usr/bin/uname"], timeout=30)
    h.check(r.rc == 0, f"ldd /usr/bin/uname\n{r.describe()}")
    files = ["/usr/bin/uname"] + [w for w in r.out.split() if w.startswith("/")]
    for path in files:
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        shutil.copy2(path, root + path)


def installed_demo(prefix_bin, root):
    """The local demo, run with the installed sbrun only (no SB_AGENT, no SB_STUB)."""
    return h.run([os.path.join(prefix_bin, "sbrun"), "--target",
                  f"local:{root}?hostname=installed-b", "--", "sh", "-c", DEMO_SCRIPT],
                 timeout=60)


def check_tree(dest, prefix):
    """The files meson install must have put under dest+prefix, and that they work there."""
    p = dest + prefix
    lib = glob.glob(p + "/lib/*/pkgconfig/splitbrain.pc") + glob.glob(p + "/lib/pkgconfig/splitbrain.pc")
    h.check(len(lib) == 1, f"splitbrain.pc not installed: {lib}")
    expected = ["bin/sbrun", "bin/sbagent", "libexec/splitbrain/sb-stub", "include/splitbrain.h",
                "share/man/man1/sbrun.1", "share/man/man1/sbagent.1",
                "share/man/man5/splitbrain.conf.5",
                "share/bash-completion/completions/sbrun",
                "share/bash-completion/completions/sbagent",
                "share/zsh/vendor-completions/_sbrun",
                "lib/systemd/system/sbagent.service", "lib/systemd/system/sbagent.socket"]
    missing = [e for e in expected if not os.path.exists(os.path.join(p, e))]
    h.check(not missing, f"not installed under {p}: {missing}")
    with open(os.path.join(p, "lib/systemd/system/sbagent.service")) as f:
        h.check(f"ExecStart={prefix}/bin/sbagent --listen systemd" in f.read(),
                "sbagent.service must start the installed agent with --listen systemd")
    for page in ("man1/sbrun.1", "man1/sbagent.1", "man5/splitbrain.conf.5"):
        r = h.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                   os.path.join(p, "share/man", page)], timeout=60)
        h.check(r.rc == 0 and r.err.strip() == "", f"{page}: groff warnings\n{r.describe()}")
        r = h.run(["man", "-l", os.path.join(p, "share/man", page)], timeout=60,
                  env=dict(h.ENV, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        h.check(r.rc == 0 and "SYNOPSIS" in r.out, f"man -l {page} failed\n{r.describe()}")
    for comp in ("sbrun", "sbagent"):
        r = h.run(["bash", "-n", os.path.join(p, "share/bash-completion/completions", comp)],
                  timeout=30)
        h.check(r.rc == 0, f"bash completion {comp} does not parse\n{r.describe()}")
    pc_env = dict(h.ENV, PKG_CONFIG_PATH=os.path.dirname(lib[0]))
    r = h.run(["pkg-config", "--cflags", "splitbrain"], timeout=30, env=pc_env)
    h.check(r.rc == 0 and f"-I{prefix}/include" in r.out, f"pkg-config splitbrain\n{r.describe()}")
    r = h.run(["pkg-config", "--libs", "splitbrain"], timeout=30, env=pc_env)
    h.check(r.rc == 0 and r.out.strip() == "", f"splitbrain.h needs nothing linked\n{r.describe()}")
    sites = glob.glob(p + "/lib/python3*/*-packages/splitbrain-*.dist-info/entry_points.txt")
    h.check(len(sites) == 1, f"the Python package's metadata is not installed: {sites}")
    site = os.path.dirname(os.path.dirname(sites[0]))
    r = h.run([h.SYS_PYTHON, "-c", "import importlib.metadata as m, splitbrain.pytest_plugin; "
               "print([e.value for e in m.entry_points(group='pytest11') "
               "if e.name == 'splitbrain'])"], timeout=30, env=dict(h.ENV, PYTHONPATH=site))
    h.check(r.rc == 0 and r.out.strip() == "['splitbrain.pytest_plugin']",
            f"the installed package must register its pytest plugin\n{r.describe()}")


def case_install_tree(ctx):
    """meson install into a DESTDIR and into the real prefix /usr/local (in a fresh mount
    namespace with a tmpfs there, so A's own /usr/local is untouched): the programs, sb-stub,
    man pages (groff without warnings, man -l), completions, systemd units, the header with its
    pkg-config file and the Python package with its pytest11 entry point are in place; the
    installed sbrun, with no SB_AGENT or SB_STUB, runs the local demo (its embedded agent and
    sb-stub found beside it), and a program started on B prints B's name."""
    build = build_dir(ctx)
    dest = os.path.join(ctx.tmp, "dest")
    r = h.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet", "--destdir", dest],
              timeout=300)
    h.log(r.describe())
    h.check(r.rc == 0, "meson install --destdir failed")
    check_tree(dest, "/usr/local")
    if ctx.native_only:
        return
    root = os.path.join(ctx.tmp, "demo-root")
    make_demo_root(root)
    r = installed_demo(dest + "/usr/local/bin", root)
    h.log(r.describe())
    h.check(r.rc == 0 and r.out == "installed-b\ninstalled-b\n",
            "the installed sbrun (DESTDIR) must run the demo")
    # The real prefix: a tmpfs over /usr/local in a mount namespace of its own.
    script = (f"mount -t tmpfs sbinstall /usr/local && "
              f"meson install -C {shlex.quote(build)} --no-rebuild --quiet && "
              f"/usr/local/bin/sbrun --target {shlex.quote('local:' + root + '?hostname=installed-b')}"
              f" -- sh -c {shlex.quote(DEMO_SCRIPT)} && "
              f"test -x /usr/local/libexec/splitbrain/sb-stub && echo installed-ok")
    r = h.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
              timeout=300)
    h.log(r.describe())
    h.check(r.rc == 0 and r.out == "installed-b\ninstalled-b\ninstalled-ok\n",
            "meson install into /usr/local and the demo from there")


def case_config_file(ctx):
    """Named targets from config.toml ($SB_CONFIG, --config, $XDG_CONFIG_HOME): `--target b`,
    $SB_TARGET and default-target resolve to the table's url; its glob rules apply after the
    command line's; top-level defaults fill only what the command line did not set;
    --print-config shows each value with its file and line; a bad key, a bad value and bad
    TOML each give one line naming file:line, exit 125."""
    h.need_binary(ctx.sbrun, "sbrun")
    cfgdir = os.path.join(ctx.tmp, "xdg", "splitbrain")
    os.makedirs(cfgdir)
    conf = os.path.join(cfgdir, "config.toml")
    with open(conf, "w") as f:
        f.write('default-target = "b"\n'
                'on-disconnect = "wait"\n'
                '\n'
                '[target.b]\n'
                f'url = "unix:{ctx.tmp}/nowhere.sock"\n'
                'remote = ["/dev/ttyUSB*", "/data/*.log"]\n')
    env = dict(h.ENV, XDG_CONFIG_HOME=os.path.join(ctx.tmp, "xdg"))
    r = h.run([ctx.sbrun, "--print-config"], timeout=30, env=env)
    h.log(r.describe())
    h.check(r.rc == 0 and f"# read {conf}" in r.out
            and f'on-disconnect = "wait"' in r.out and f"# {conf}:2" in r.out
            and f'target.b.remote = ["/dev/ttyUSB*", "/data/*.log"]' in r.out
            and f"# {conf}:6" in r.out, "--print-config must show values with file:line")
    r = h.run([ctx.sbrun, "--print-rules"], timeout=30, env=env)
    h.log(r.describe())
    lines = r.out.splitlines()
    h.check(r.rc == 0 and lines[:2] == ["remote    /dev/ttyUSB*        (user)",
                                        "remote    /data/*.log         (user)"],
            "the target's rules must come first in --print-rules")
    r = h.run([ctx.sbrun, "--local", "/dev/ttyUSB9", "--print-rules"], timeout=30, env=env)
    h.check(r.out.splitlines()[0].split()[:2] == ["local", "/dev/ttyUSB9"],
            "command-line rules must come before the files'\n" + r.describe())
    for bad, want in (('tls_cert = "x"\n', ':1: unknown key "tls_cert" (did you mean "tls-cert"?)'),
                      ('heartbeat = "soon"\n', ":1: heartbeat takes a number of seconds"),
                      ('on-disconnect = "sometimes"\n',
                       ':1: on-disconnect must be one of "fail", "wait", "exit", not "sometimes"'),
                      ('[target.c]\nremote = ["/x"]\n', ":1: [target.c] has no url"),
                      ('[target.c]\nurl = "bogus://x"\n', ':2: bad --target "bogus://x"'),
                      ("x = [\n", ":1: ")):
        path = os.path.join(ctx.tmp, "bad.toml")
        with open(path, "w") as f:
            f.write(bad)
        r = h.run([ctx.sbrun, "--config", path, "--target", "c", "--", "true"], timeout=30)
        h.log(r.describe())
        h.check(r.rc == 125 and r.err.startswith(f"sbrun: {path}{want}")
                and len(r.err.strip().splitlines()) <= 2,
                f"a bad config file ({bad!r}) must give one line naming {path}{want}")
    r = h.run([ctx.sbrun, "--target", "nope", "--", "true"], timeout=30, env=env)
    h.check(r.rc == 125 and "no target named 'nope'" in r.err and conf in r.err,
            "an unknown target name must name the files looked in\n" + r.describe())
    if ctx.native_only:
        return
    agent = ctx.agent(prepare=h.B_ETC_HOSTNAME)
    h.make_tree(agent)
    with open(conf, "w") as f:
        f.write(f'default-target = "b"\nremote-cwd = "{h.WORK}"\n'
                f'[target.b]\nurl = "{agent.url}"\n'
                f'[target.c]\nurl = "unix:{ctx.tmp}/nowhere.sock"\n')
    argv = ["sh", "-c", "cat hello.txt; echo $SB_X"]
    for how, extra, e in (("default-target", [], {}), ("--target b", ["--target", "b"], {}),
                          ("SB_TARGET", [], {"SB_TARGET": "b"})):
        r = h.run([ctx.sbrun] + extra + ["--"] + argv, timeout=60, cwd=ctx.tmp,
                  env=dict(env, SB_X="x", **e))
        h.log(r.describe())
        h.check(r.rc == 0 and r.out == "hello from board-b\nx\n",
                f"{how}: the named target must be the agent in config.toml")
    r = h.run([ctx.sbrun, "--target", "c", "--", "true"], timeout=60, env=env)
    h.check(r.rc == 125 and "nowhere.sock" in r.err, "--target c must be config's c\n"
            + r.describe())


def case_debian_package(ctx):
    """Only when asked (SB_TEST_DEB=1; a full build, beyond the CI budget): scripts/build-deb
    builds splitbrain, splitbrain-agent and python3-splitbrain and lintian finds no error (or
    SB_DEB_DIR names .debs it built before); each package holds its files, and the programs
    unpacked from the two .debs run the local demo, a program started on B included."""
    if os.environ.get("SB_TEST_DEB") != "1":
        raise h.Skip("a full package build: run with SB_TEST_DEB=1 (scripts/build-deb)")
    debs = os.environ.get("SB_DEB_DIR")
    if not debs:
        debs = os.path.join(ctx.tmp, "debs")
        r = h.run([os.path.join(h.HERE, "..", "..", "scripts", "build-deb"), debs],
                  timeout=3600)
        h.log(r.describe())
        h.check(r.rc == 0, "scripts/build-deb failed (build or lintian)")
    contents = {"splitbrain": ["./usr/bin/sbrun", "./usr/libexec/splitbrain/sb-stub",
                               "./usr/lib/splitbrain/agents/sbagent-x86_64",
                               "./usr/include/splitbrain.h", "./usr/share/man/man1/sbrun.1.gz",
                               "./usr/share/man/man5/splitbrain.conf.5.gz"],
                "splitbrain-agent": ["./usr/bin/sbagent", "./lib/systemd/system/sbagent.socket",
                                     "./lib/systemd/system/sbagent.service"],
                "python3-splitbrain": ["./usr/lib/python3/dist-packages/splitbrain/__init__.py",
                                       "./usr/lib/python3/dist-packages/splitbrain/pytest_plugin.py"]}
    unpacked = os.path.join(ctx.tmp, "unpacked")
    for pkg, files in contents.items():
        found = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        h.check(len(found) == 1, f"no {pkg} package in {debs}: {os.listdir(debs)}")
        r = h.run(["dpkg-deb", "-c", found[0]], timeout=60)
        listed = {line.split()[-1] for line in r.out.splitlines() if line.strip()}
        missing = [f for f in files if f not in listed]
        h.check(r.rc == 0 and not missing, f"{pkg}: missing {missing}")
        if pkg != "python3-splitbrain":
            r = h.run(["dpkg-deb", "-x", found[0], unpacked], timeout=60)
            h.check(r.rc == 0, f"dpkg-deb -x {found[0]}\n{r.describe()}")
    if ctx.native_only:
        return
    root = os.path.join(ctx.tmp, "demo-root")
    make_demo_root(root)
    r = installed_demo(unpacked + "/usr/bin", root)
    h.log(r.describe())
    h.check(r.rc == 0 and r.out == "installed-b\ninstalled-b\n",
            "the packaged sbrun must run the demo")


def register(cases, harness):
    global h
    h = harness
    cases["socket-activation"] = (case_socket_activation, True)
    cases["install-tree"] = (case_install_tree, True)
    cases["config-file"] = (case_config_file, True)
    cases["debian-package"] = (case_debian_package, True)
