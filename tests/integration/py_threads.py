# Eight threads do remote file IO at the same time (run from the work directory on B): each
# writes, reads back, renames and stats its own files. Every thread must be traced from its first
# instruction, and one thread's remote call must not disturb another's.
import os
import threading

results = {}
errors = []


def work(i):
    try:
        d = f"thread-{i}"
        os.mkdir(d)
        total = 0
        for j in range(40):
            p = os.path.join(d, f"f{j}")
            with open(p, "w") as f:
                f.write(f"{i}:{j}\n" * (j + 1))
            with open(p) as f:
                total += len(f.read())
            os.rename(p, p + ".done")
            total += os.stat(p + ".done").st_size
        results[i] = (total, len(os.listdir(d)))
    except Exception as e:  # reported below, so a failure shows in the output
        errors.append(f"thread {i}: {e!r}")


threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for i in sorted(results):
    print(i, *results[i])
print("errors:", errors)
print(sorted(n for n in os.listdir(".") if n.startswith("thread-")))
