"""Integration cases for network partitions (issue 7): sbrun reaches a TCP agent through a small
proxy of the harness's own, which can stop forwarding in both directions while keeping every
socket open (no FIN, no RST: a pulled cable). run.py registers them (register()); they use
run.py's helpers through the module `h` it passes.

Everything listens on 127.0.0.1 only; every wait has a deadline, and the proxy, the agent and
sbrun are torn down by the case's cleanups whatever happens."""

import os
import re
import select
import socket
import threading
import time

h = None   # run.py, set by register()

HEARTBEAT = 2          # sbrun --heartbeat
CLIENT_TIMEOUT = 5     # sbagent --client-timeout (above 2 x HEARTBEAT, so it is the limit)


class PartitionProxy:
    """127.0.0.1:port -> 127.0.0.1:upstream, one thread.

    partition(): from now on nothing is forwarded either way and nothing is accepted; every
    socket stays open (no FIN, no RST), and what the peers send stays unread in the proxy's
    buffers: to both ends the other side has gone silent. Connections made meanwhile wait in the
    listen backlog, as a SYN would be retransmitted.
    heal(): accepting and forwarding resume for connections made since the partition (those
    in the backlog too: their bytes arrive late, as retransmitted ones would). Connections from
    before the partition stay dead: the cable was out longer than either side waited."""

    def __init__(self, ctx, upstream):
        self.upstream = upstream
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.partitioned = False
        self.stopping = False
        self.pairs = []            # [client socket, upstream socket, alive]
        self.forwarded = 0         # bytes, both ways
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="partition-proxy", daemon=True)
        self.thread.start()
        ctx.cleanups.append(self.stop)

    def partition(self):
        with self.lock:
            self.partitioned = True
            for p in self.pairs:
                p[2] = False
        os.write(self.wake_w, b"x")

    def heal(self):
        with self.lock:
            self.partitioned = False
        os.write(self.wake_w, b"x")

    def stop(self):
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        self.thread.join(5)
        with self.lock:
            for a, b, _ in self.pairs:
                a.close()
                b.close()
            self.pairs = []
        self.lsock.close()
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _run(self):
        while not self.stopping:
            with self.lock:
                rlist = [self.wake_r]
                if not self.partitioned:
                    rlist.append(self.lsock)
                    for a, b, alive in self.pairs:
                        if alive:
                            rlist += [a, b]
            try:
                ready, _, _ = select.select(rlist, [], [], 0.5)
            except (OSError, ValueError):
                continue   # a socket closed meanwhile
            with self.lock:
                for s in ready:
                    if self.stopping or self.partitioned:
                        break
                    if s == self.wake_r:
                        os.read(self.wake_r, 64)
                    elif s is self.lsock:
                        self._accept()
                    else:
                        self._forward(s)
            if self.stopping:
                return

    def _accept(self):
        try:
            client, _ = self.lsock.accept()
        except OSError:
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            client.close()
            return
        up.settimeout(5)
        client.settimeout(5)
        self.pairs.append([client, up, True])

    def _forward(self, s):
        for p in self.pairs:
            if p[2] and (s is p[0] or s is p[1]):
                other = p[1] if s is p[0] else p[0]
                try:
                    data = s.recv(65536)
                    if data:
                        other.sendall(data)
                        self.forwarded += len(data)
                        return
                    other.shutdown(socket.SHUT_WR)   # pass the FIN on
                except OSError:
                    pass
                p[2] = False
                return


def start(ctx):
    """An agent on B listening on 127.0.0.1 (B's own namespaces, A's network), the fixture tree,
    and a proxy in front of it."""
    agent = ctx.agent(listen="tcp://127.0.0.1:0",
                      args=["--client-timeout", str(CLIENT_TIMEOUT), "-v"])
    h.make_tree(agent)
    port = int(agent.url.rsplit(":", 1)[1])
    return agent, port


def agent_log(agent):
    with open(agent.logpath, errors="replace") as f:
        return f.read()


def traced(ctx, proxy, argv, extra=(), pass_fds=()):
    t = h.Traced([ctx.sbrun, "--target", f"b=tcp://127.0.0.1:{proxy.port}", "--remote-cwd",
                  h.WORK, f"--heartbeat={HEARTBEAT}"] + list(extra) + ["--"] + list(argv),
                 cwd=ctx.tmp, pass_fds=pass_fds)
    ctx.cleanups.append(t.kill)
    return t


def wait_session_gone(agent, before, since):
    """Waits (at most CLIENT_TIMEOUT + 6 s) until the agent has dropped the silent session: it
    says so in its log, and its fds and processes are as before the session. Returns the seconds
    from `since`."""
    def gone():
        return ("dropped as gone" in agent_log(agent)
                and not h.state_diff(before, h.agent_state(agent)))
    ok = h.wait_for(gone, CLIENT_TIMEOUT + 6, step=0.05)
    took = time.monotonic() - since
    h.check(ok, f"the agent still holds the partitioned session {took:.1f} s after the "
            f"partition (--client-timeout {CLIENT_TIMEOUT}):\n"
            + h.state_diff(before, h.agent_state(agent)) + "\n" + agent.log_tail())
    return took


def case_partition_fail(ctx):
    """A network partition (the proxy stops forwarding both ways, sockets open) under a program
    that preads a remote file in a loop, --on-disconnect=fail --heartbeat=2: the pread in flight
    fails with EIO within about the heartbeat, the program ends, sbrun exits; nothing hangs. On
    B, the agent (--client-timeout 5) drops the silent session within its bound while the
    partition lasts: its fds and processes go back to what they were. After the heal a new sbrun
    works through the proxy."""
    helper = h.probe_path(ctx)
    agent, port = start(ctx)
    if ctx.native_only:
        return
    proxy = PartitionProxy(ctx, port)
    before = h.agent_state(agent)
    t = traced(ctx, proxy, [helper, "preads", h.WORK + "/hello.txt"])
    t.until(lambda l: l.startswith("reading"), 30, "the reads")
    h.check(h.wait_for(lambda: h.state_diff(before, h.agent_state(agent)), 5),
            "the session does not show in the agent's fds")
    time.sleep(1)
    proxy.partition()
    cut = time.monotonic()
    ended = t.until(lambda l: l.startswith("pread "), 3 * HEARTBEAT + 10, "the heartbeat's verdict")
    detected = float(ended.split()[-1]) - cut
    rc = t.finish(20)
    exited = time.monotonic() - cut
    h.log(t.describe())
    h.log(f"[partition] sbrun found the partition after {detected:.3f} s (--heartbeat "
          f"{HEARTBEAT}); sbrun exited {exited:.2f} s after the partition")
    h.check(ended.startswith("pread EIO"), "the pread in flight must fail with EIO")
    h.check(rc == h.OUTAGE_EXIT, "the program must see EIO and exit 0, and sbrun "
            f"{h.OUTAGE_EXIT} for the outage")
    h.check(detected < 3 * HEARTBEAT + 2, f"found after {detected:.2f} s: more than "
            f"3 x the heartbeat + 2 s")
    h.check(exited < 3 * HEARTBEAT + 12, f"sbrun took {exited:.1f} s to exit")
    h.check_reported(t, 1)

    gone = wait_session_gone(agent, before, cut)
    h.log(f"[partition] the agent dropped the silent session {gone:.2f} s after the partition "
          f"(--client-timeout {CLIENT_TIMEOUT})")
    h.check(gone > CLIENT_TIMEOUT - 0.5, f"the agent dropped the session after {gone:.2f} s, "
            f"before --client-timeout {CLIENT_TIMEOUT} s of silence")
    h.check(agent.alive(), "the agent died\n" + agent.log_tail())

    proxy.heal()
    r = h.run([ctx.sbrun, "--target", f"tcp://127.0.0.1:{proxy.port}", "--remote-cwd", h.WORK,
               "--", "cat", "hello.txt"], timeout=60, cwd=ctx.tmp)
    h.log(r.describe())
    h.check(r.rc == 0 and r.out == "hello from board-b\n", "a new session after the heal failed")


def case_partition_wait(ctx):
    """A network partition under a program that appends a counter to a file on B (fsync after
    each value) while holding another remote fd, --on-disconnect=wait --heartbeat=2: the call in
    flight fails with EIO within about the heartbeat; the reopen waits while the partition lasts
    (no value is synced meanwhile); the agent drops the silent session within --client-timeout;
    when the proxy heals, sbrun reconnects, the reopen works on the new session and the program
    finishes; the fd held across the outage is stale (EIO) until closed, and every synced value
    is on B. Disconnect and reconnect are reported once each, on stderr and as status events."""
    helper = h.probe_path(ctx)
    agent, port = start(ctx)
    if ctx.native_only:
        return
    proxy = PartitionProxy(ctx, port)
    before = h.agent_state(agent)
    ours, theirs = h.control_pair()
    t = traced(ctx, proxy, [helper, "held", h.WORK + "/hello.txt", h.WORK + "/count.txt", "300"],
               extra=["--on-disconnect=wait", "--control-fd", str(theirs.fileno())],
               pass_fds=(theirs.fileno(),))
    theirs.close()
    t.until(lambda l: l.startswith("synced 50 "), 60, "synced 50")
    proxy.partition()
    cut = time.monotonic()
    failed = t.until(lambda l: l.startswith("error "), 3 * HEARTBEAT + 10, "the call in flight")
    detected = float(failed.split()[-1]) - cut
    h.log(f"[partition] {failed}: {detected:.3f} s after the partition (--heartbeat {HEARTBEAT})")
    h.check(" EIO " in failed, "the call in flight must fail with EIO")
    h.check(detected < 3 * HEARTBEAT + 2, f"found after {detected:.2f} s: more than "
            f"3 x the heartbeat + 2 s")

    gone = wait_session_gone(agent, before, cut)
    h.log(f"[partition] the agent dropped the silent session {gone:.2f} s after the partition "
          f"(--client-timeout {CLIENT_TIMEOUT})")
    h.check(gone > CLIENT_TIMEOUT - 0.5, f"the agent dropped the session after {gone:.2f} s, "
            f"before --client-timeout {CLIENT_TIMEOUT} s of silence")
    time.sleep(0.5)
    proxy.heal()
    healed = time.monotonic()
    after = t.until(lambda l: l.startswith("synced "), 20, "progress after the heal")
    resumed = float(after.split()[2]) - healed
    rc = t.finish(60)
    h.log(t.describe())
    h.log(f"[partition] healed {healed - cut:.2f} s after the partition; {after.split()[0]} "
          f"{after.split()[1]} on the new session {resumed:.3f} s after the heal")
    h.check(rc == 0, "the program must finish")
    h.check("ALL OK" in t.out(), "the fd held across the outage must be stale (EIO) until "
            "closed, and reopen")
    values = h.synced_values(t)
    h.check(values == list(range(1, 301)), "every value 1..300 must be synced once, in order")
    times = [float(l.split()[2]) for _, l in t.lines if l.startswith("synced ")]
    parked = [v for v, at in zip(values, times) if cut + detected < at < healed]
    h.check(not parked, f"values {parked} were synced while the partition lasted")
    h.check_file_holds(agent, h.WORK + "/count.txt", values)
    errors = [l for _, l in t.lines if l.startswith("error ")]
    h.check(len(errors) == 1, f"exactly the call in flight fails: {errors}")
    h.check(resumed < 12, f"the program resumed {resumed:.1f} s after the heal")
    h.check_reported(t, 1, 1)
    events = h.events_on(ours)
    h.check(events == ["disconnected b", "reconnected b"], f"status events: {events}")


def case_client_timeout_idle(ctx):
    """The silence check does not take live clients for gone: with --client-timeout 2 on the
    agent, a program that holds a remote fd and sleeps 6 s without a call reads it afterwards,
    both under sbrun --heartbeat=1 (its pings keep the session) and --heartbeat=0 (a client
    without heartbeats is not watched); the agent drops nothing."""
    agent = ctx.agent(listen="tcp://127.0.0.1:0", args=["--client-timeout", "2", "-v"])
    h.make_tree(agent)
    if ctx.native_only:
        return
    h.need_binary(ctx.sbrun, "sbrun")
    for beat in ("1", "0"):
        r = h.run([ctx.sbrun, "--target", agent.url, "--remote-cwd", h.WORK,
                   f"--heartbeat={beat}", "--", "sh", "-c",
                   "exec 3< hello.txt; sleep 6; cat <&3"], timeout=60, cwd=ctx.tmp)
        h.log(r.describe())
        h.check(r.rc == 0 and r.out == "hello from board-b\n",
                f"--heartbeat={beat}: an idle live session must be kept")
        h.check("lost the connection" not in r.err, f"--heartbeat={beat}: a disconnect")
    log = agent_log(agent)
    h.check("dropped as gone" not in log, "the agent dropped a live session:\n" + log)
    h.check("heartbeat 1000 ms" in log and "heartbeat 0 ms" in log,
            "the agent must log the heartbeat each client announced\n" + log)


def case_client_timeout_flag(ctx):
    """sbagent --client-timeout: bad values are refused with a message; the help names it."""
    h.need_binary(ctx.sbagent, "sbagent")
    for bad in ("-1", "abc", "0.01", ""):
        r = h.run([ctx.sbagent, "--listen", "tcp://127.0.0.1:0", "--client-timeout", bad],
                  timeout=30)
        h.check(r.rc != 0 and "--client-timeout" in r.err,
                f"--client-timeout {bad!r} must be refused\n{r.describe()}")
    r = h.run([ctx.sbagent, "--help"], timeout=30)
    h.check("--client-timeout" in r.out, "sbagent --help must describe --client-timeout")


# ---- --link-fault: faults of the link on purpose (issue 19) ---------------------------------

# Five files on B, each read with its own open/read/close (three remote calls), with a pause
# between them; each line says what the program saw.
READ_FIVE = (
    "import os, time\n"
    "for i in range(1, 6):\n"
    "    try:\n"
    "        fd = os.open(f'f{i}', os.O_RDONLY)\n"
    "        data = os.read(fd, 100).decode().strip()\n"
    "        os.close(fd)\n"
    "        print(i, data, flush=True)\n"
    "    except OSError as e:\n"
    "        print(i, 'error', e.strerror, flush=True)\n"
    "    time.sleep(0.2)\n")


def five_files(ctx):
    agent = ctx.agent(prepare=h.B_ETC_HOSTNAME)
    h.need_binary(ctx.sbrun, "sbrun")
    h.empty_tree(agent)
    r = agent.sh(" && ".join(f"echo from-b-{i} > {h.WORK}/f{i}" for i in range(1, 6)))
    h.check(r.rc == 0, f"making the files failed\n{r.describe()}")
    return agent


EXPECTED_FIVE = "".join(f"{i} from-b-{i}\n" for i in range(1, 6))


def case_link_fault_drop(ctx):
    """drop=N cuts the connection once the Nth remote call is answered: sbrun says so,
    reconnects, the program's later calls work, and sbrun exits 122 (fail mode); with
    --on-disconnect=exit the program ends there."""
    agent = five_files(ctx)
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", READ_FIVE], extra=("--link-fault", "drop=3"))
    h.log(t.describe())
    h.check("cut by --link-fault drop=3 after 3 remote calls" in t.err,
            "the drop was not reported")
    h.check("reconnected to target" in t.err, "sbrun did not reconnect after the drop")
    h.check(t.out == EXPECTED_FIVE, "the program's calls after the reconnect did not work")
    h.check(t.rc == 122, f"sbrun exited {t.rc}, not 122, after an outage in fail mode")
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", READ_FIVE],
                   extra=("--link-fault", "drop=3", "--on-disconnect=exit"))
    h.log(t.describe())
    h.check(t.rc == 122 and EXPECTED_FIVE.startswith(t.out) and t.out != EXPECTED_FIVE and
            "ending the program (--on-disconnect=exit)" in t.err,
            f"--on-disconnect=exit did not end the program at the drop (exit {t.rc})")
    # Only the named target is cut.
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", READ_FIVE],
                   extra=("--link-fault", "drop=3:target=target1"))
    h.check(t.rc == 122 and "cut by --link-fault" in t.err, "target= did not select the target")


def case_link_fault_freeze(ctx):
    """freeze=N:for=T makes B silent for T after the Nth call: the heartbeat declares the link
    lost, no connection is answered until T has passed, and in wait mode the program goes on
    afterwards with its own exit status."""
    agent = five_files(ctx)
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", READ_FIVE],
                   extra=("--heartbeat", "1", "--on-disconnect=wait",
                          "--link-fault", "freeze=3:for=3s"))
    h.log(t.describe())
    h.check("goes silent for 3.0 s after 3 remote calls" in t.err, "the freeze was not reported")
    h.check("no answer for" in t.err, "the heartbeat did not notice the silence")
    m = re.search(r"reconnected to target '[^']+' \([^)]*\) after ([0-9.]+) s", t.err)
    h.check(m is not None, "sbrun did not reconnect after the freeze")
    # A lower bound only: the reconnect waited for the end of the freeze.
    h.check(float(m.group(1)) >= 1.5, f"reconnected {m.group(1)} s after the loss, within the "
            "freeze")
    h.check(t.rc == 0 and t.out == EXPECTED_FIVE,
            f"the program did not go on after the freeze (exit {t.rc})")


def case_link_fault_delay(ctx):
    """delay=D holds every answer back by D: a program's remote calls take at least that much
    longer each (a lower bound, which load cannot break)."""
    agent = five_files(ctx)
    code = ("import os, time\n"
            "t = time.monotonic()\n"
            "for _ in range(5): os.stat('f1')\n"
            "print(f'{time.monotonic() - t:.3f}')\n")
    t = ctx.traced(agent, [h.SYS_PYTHON, "-c", code], extra=("--link-fault", "delay=200ms"))
    h.log(t.describe())
    h.check(t.rc == 0, "the delayed run failed")
    h.check(float(t.out) >= 1.0, f"five stats took {t.out.strip()} s with 200 ms each")


def case_link_fault_flag(ctx):
    """Bad --link-fault specs are refused with a message, before anything starts."""
    h.need_binary(ctx.sbrun, "sbrun")
    for spec, words in [("bogus=1", "unknown fault"), ("drop=0", "number of remote calls"),
                        ("drop=x", "number of remote calls"), ("delay=5", "duration"),
                        ("freeze=2", "needs for="), ("freeze=2:for=1h", "duration"),
                        ("drop=1:target=nope", "no target named 'nope'"),
                        ("drop=1:when=3", "unknown or misplaced"), ("drop", "needs a value")]:
        r = h.run([ctx.sbrun, "--link-fault", spec, "--", "true"])
        h.check(r.rc == 125 and words in r.err, f"--link-fault {spec}: exit {r.rc}\n{r.err}")


def register(cases, harness):
    global h
    h = harness
    cases["partition-fail"] = (case_partition_fail, True)
    cases["partition-wait"] = (case_partition_wait, True)
    cases["client-timeout-idle"] = (case_client_timeout_idle, True)
    cases["client-timeout-flag"] = (case_client_timeout_flag, False)
    cases["link-fault-drop"] = (case_link_fault_drop, True)
    cases["link-fault-freeze"] = (case_link_fault_freeze, True)
    cases["link-fault-delay"] = (case_link_fault_delay, True)
    cases["link-fault-flag"] = (case_link_fault_flag, False)
