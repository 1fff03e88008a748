# An asyncio program waiting on a FIFO in the work directory (on B: remote under sbrun) and a
# local pipe at once, with the default event loop (EpollSelector): add_reader on both, data
# arriving on each side from a child process while the loop waits, add_writer on the FIFO's
# write end, a timer, and wait_for timing out on a reader that never gets data.
import asyncio
import os
import selectors
import sys

os.mkfifo("fifo")
fifo_r = os.open("fifo", os.O_RDONLY | os.O_NONBLOCK)
fifo_w = os.open("fifo", os.O_WRONLY)
pipe_r, pipe_w = os.pipe()
os.set_blocking(pipe_r, False)
print("selector:", type(selectors.DefaultSelector()).__name__)

pid = os.fork()
if pid == 0:
    import time
    for i in range(3):
        time.sleep(0.05)
        os.write(pipe_w, f"local-{i}\n".encode())
        time.sleep(0.05)
        os.write(fifo_w, f"remote-{i}\n".encode())
    os._exit(0)


async def main():
    loop = asyncio.get_running_loop()
    got = {"fifo": [], "pipe": []}
    done = loop.create_future()

    def on_readable(name, fd):
        data = os.read(fd, 4096).decode()
        got[name].extend(data.split())
        if len(got["fifo"]) + len(got["pipe"]) >= 6 and not done.done():
            done.set_result(None)

    loop.add_reader(fifo_r, on_readable, "fifo", fifo_r)
    loop.add_reader(pipe_r, on_readable, "pipe", pipe_r)
    await asyncio.wait_for(done, 20)
    loop.remove_reader(fifo_r)
    loop.remove_reader(pipe_r)
    print("from the fifo:", got["fifo"])
    print("from the pipe:", got["pipe"])

    writable = loop.create_future()
    loop.add_writer(fifo_w, lambda: writable.done() or writable.set_result("writable"))
    print("fifo write end:", await asyncio.wait_for(writable, 5))
    loop.remove_writer(fifo_w)

    never = loop.create_future()
    loop.add_reader(fifo_r, lambda: never.done() or never.set_result("data?"))
    t0 = loop.time()
    try:
        await asyncio.wait_for(never, 0.2)
        print("unexpected data")
    except asyncio.TimeoutError:
        print("no data within 0.2 s: timed out after at least 0.2 s:", loop.time() - t0 >= 0.19)
    loop.remove_reader(fifo_r)
    await asyncio.sleep(0.05)
    print("timer fired")


asyncio.run(main())
_, status = os.waitpid(pid, 0)
print("writer exit status:", status)
os.close(fifo_r)
os.close(fifo_w)
os.unlink("fifo")
sys.stdout.flush()
