#!/usr/bin/env python3
"""splitbrain benchmark (run by hand; not part of CI).

Measures, in one run, against baselines measured in the same run:
  - redirected stat() latency: N stat() calls on a file on B, natively on B (nsenter into the
    agent's namespaces) and under sbrun on A; plus the same program on a local file with no sbrun;
  - sequential read throughput: a 1 GiB sparse file on B read in 1 MiB read() calls, natively on
    B, under sbrun, and locally without sbrun.
It prints µs/call, MB/s and the ratios. The agent runs exactly as in the integration tests (its
own UTS+mount namespaces, a tmpfs only it can see), over a unix socket.

    sudo tests/bench/bench.py --sbrun build/tracer/sbrun --sbagent build/agent/sbagent
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import run as harness  # noqa: E402  (the integration runner: Agent, run, probes)


class Ctx:
    def __init__(self, sbagent, tmp):
        self.sbagent = sbagent
        self.tmp = tmp


def compile_helpers(tmp):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        sys.exit("bench.py: needs a C compiler (cc)")
    out = {}
    for name in ("stat_loop", "read_file"):
        exe = os.path.join(tmp, name)
        subprocess.run([cc, "-O2", "-Wall", "-o", exe, os.path.join(HERE, name + ".c")], check=True)
        out[name] = exe
    return out


def measure(argv, key, repeat, runner=harness.run):
    """Runs argv `repeat` times and returns the median of the number printed after `key`."""
    values = []
    for _ in range(repeat):
        r = runner(argv, timeout=600)
        m = re.search(key + r" ([0-9.]+)", r.out)
        if r.rc != 0 or not m:
            raise SystemExit(f"bench.py: measurement failed\n{r.describe()}")
        values.append(float(m.group(1)))
    return statistics.median(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sbrun", required=True)
    ap.add_argument("--sbagent", required=True)
    ap.add_argument("--stat-calls", type=int, default=20000)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--chunk-kib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = ap.parse_args()
    sbrun, sbagent = os.path.abspath(args.sbrun), os.path.abspath(args.sbagent)
    try:
        harness.probe_namespaces()
        harness.probe_ptrace()
    except harness.Skip as e:
        sys.exit(f"bench.py: cannot run here: {e}")

    tmp = tempfile.mkdtemp(prefix="sb-bench-")
    os.chmod(tmp, 0o755)
    agent = None
    cleanup = [tmp]
    try:
        exe = compile_helpers(tmp)
        agent = harness.Agent(Ctx(sbagent, tmp)).start()
        big = f"{harness.B_ROOT}/big"
        small = f"{harness.B_ROOT}/small"
        r = agent.sh(f"echo x > {small} && truncate -s {args.size_mib}M {big}")
        assert r.rc == 0, r.describe()
        # The local baseline lives on a tmpfs too (/dev/shm), like B's files: same file system.
        ltmp = tempfile.mkdtemp(prefix="sb-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp)
        cleanup.append(ltmp)
        local_small = os.path.join(ltmp, "small")
        local_big = os.path.join(ltmp, "big")
        with open(local_small, "w") as f:
            f.write("x\n")
        with open(local_big, "wb") as f:
            f.truncate(args.size_mib << 20)

        def traced(argv, **kw):
            return harness.run([sbrun, "--target", agent.url, "--"] + argv, **kw)

        n = str(args.stat_calls)
        chunk = str(args.chunk_kib * 1024)
        res = {}
        res["stat_local"] = measure([exe["stat_loop"], local_small, n], "us_per_call", args.repeat)
        res["stat_native_b"] = measure([exe["stat_loop"], small, n], "us_per_call", args.repeat,
                                       runner=lambda a, **kw: agent.nsenter(a, **kw))
        res["stat_sbrun"] = measure([exe["stat_loop"], small, n], "us_per_call", args.repeat, runner=traced)
        res["read_local"] = measure([exe["read_file"], local_big, chunk], "MB_per_s", args.repeat)
        res["read_native_b"] = measure([exe["read_file"], big, chunk], "MB_per_s", args.repeat,
                                       runner=lambda a, **kw: agent.nsenter(a, **kw))
        res["read_sbrun"] = measure([exe["read_file"], big, chunk], "MB_per_s", args.repeat, runner=traced)

        print(f"stat() x {args.stat_calls} (median of {args.repeat}):")
        print(f"  local, no sbrun      {res['stat_local']:10.3f} us/call")
        print(f"  native on B          {res['stat_native_b']:10.3f} us/call")
        print(f"  under sbrun (A->B)   {res['stat_sbrun']:10.3f} us/call   "
              f"x{res['stat_sbrun'] / res['stat_native_b']:.1f} native-on-B, "
              f"x{res['stat_sbrun'] / res['stat_local']:.1f} local")
        print(f"read {args.size_mib} MiB in {args.chunk_kib} KiB calls (median of {args.repeat}):")
        print(f"  local, no sbrun      {res['read_local']:10.1f} MB/s")
        print(f"  native on B          {res['read_native_b']:10.1f} MB/s")
        print(f"  under sbrun (A->B)   {res['read_sbrun']:10.1f} MB/s   "
              f"{res['read_sbrun'] / res['read_native_b']:.3f} of native-on-B, "
              f"{res['read_sbrun'] / res['read_local']:.3f} of local")
    finally:
        if agent:
            agent.stop()
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
