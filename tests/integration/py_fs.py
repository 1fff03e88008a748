"""File-system workout with os, pathlib, shutil and tempfile, run in the current directory.

The integration case `python` feeds this script to `python3 -` on standard input, natively on
the agent's machine and under sbrun, and compares what it prints and the tree it leaves. It
prints nothing that may differ between two runs (no inode numbers, times or random names).
"""
import errno
import hashlib
import os
import pathlib
import shutil
import stat
import tempfile

work = pathlib.Path.cwd()
print("cwd:", work)

p = work / "py"
p.mkdir()
(p / "a.txt").write_text("alpha\n")
(p / "b.bin").write_bytes(bytes(range(256)) * 400)
(p / "sub").mkdir(mode=0o750)
(p / "sub" / "c.txt").write_text("gamma\n")
print("listing:", sorted(x.name for x in p.iterdir()))
st = (p / "b.bin").stat()
print("b.bin size", st.st_size, "mode", oct(stat.S_IMODE(st.st_mode)), "regular", stat.S_ISREG(st.st_mode))
print("sub mode", oct(stat.S_IMODE((p / "sub").stat().st_mode)))

# shutil.copyfile uses sendfile on Linux and falls back to read/write.
shutil.copy2(p / "a.txt", p / "a-copy.txt")
print("copy2 keeps mtime:", (p / "a.txt").stat().st_mtime_ns == (p / "a-copy.txt").stat().st_mtime_ns)
shutil.copyfile(p / "b.bin", p / "b-copy.bin")
print("copyfile same content:", (p / "b.bin").read_bytes() == (p / "b-copy.bin").read_bytes())
os.symlink("a.txt", p / "lnk")
print("readlink:", os.readlink(p / "lnk"), "resolves to", (p / "lnk").resolve().relative_to(work))
shutil.copytree(p, work / "py-tree", symlinks=True)
os.rename(p / "a-copy.txt", p / "renamed.txt")
os.replace(p / "b-copy.bin", p / "renamed.txt")
print("after replace:", sorted(x.name for x in p.iterdir()))

d = tempfile.mkdtemp(dir=work, prefix="tmp-")
print("mkdtemp in work:", os.path.dirname(d) == str(work), "mode", oct(stat.S_IMODE(os.stat(d).st_mode)))
with tempfile.NamedTemporaryFile(dir=d, delete=False) as f:
    f.write(b"x" * 10)
    name = f.name
print("temp file size:", os.path.getsize(name))
with tempfile.TemporaryFile(dir=d) as f:
    f.write(b"unnamed")
    f.seek(0)
    print("TemporaryFile reads back:", f.read())
shutil.rmtree(d)
print("rmtree removed it:", not os.path.exists(d))

for root, dirs, files in os.walk(work / "py-tree"):
    dirs.sort()
    rel = os.path.relpath(root, work)
    print("walk:", rel, sorted(dirs), sorted(files))

print("sha256 b.bin:", hashlib.sha256((p / "b.bin").read_bytes()).hexdigest())
with open(p / "a.txt", "r+") as f:
    f.seek(0, os.SEEK_END)
    f.write("beta\n")
    f.seek(0)
    print("read back:", f.read().split())
with open(p / "a.txt", "ab") as f:
    print("append position:", f.tell())
    f.write(b"gamma\n")
print("lines:", (p / "a.txt").read_text().splitlines())

try:
    open(work / "missing")
except FileNotFoundError as e:
    print("FileNotFoundError", errno.errorcode[e.errno])
try:
    os.mkdir(p)
except FileExistsError as e:
    print("FileExistsError", errno.errorcode[e.errno])
try:
    os.rmdir(p)
except OSError as e:
    print("rmdir non-empty:", errno.errorcode[e.errno])
try:
    (p / "a.txt" / "x").stat()
except NotADirectoryError as e:
    print("NotADirectoryError", errno.errorcode[e.errno])

os.chmod(p / "a.txt", 0o600)
print("a.txt mode", oct(stat.S_IMODE((p / "a.txt").stat().st_mode)), "X_OK", os.access(p / "a.txt", os.X_OK))
os.utime(p / "a.txt", (1000000000, 1000000000))
print("utime:", (p / "a.txt").stat().st_mtime)
os.truncate(p / "b.bin", 1000)
print("truncated:", (p / "b.bin").stat().st_size)
print("scandir:", sorted((e.name, e.is_dir(), e.is_symlink()) for e in os.scandir(p)))
print("glob:", sorted(str(x.relative_to(work)) for x in work.glob("py*/**/*.txt")))
print("nodename:", os.uname().nodename)
print("disk_usage total > 0:", shutil.disk_usage(work).total > 0)
shutil.move(work / "py-tree", work / "py-moved")
os.chdir(p / "sub")
print("getcwd after chdir:", os.path.relpath(os.getcwd(), work))
print("relative open:", open("c.txt").read().strip())
os.chdir(work)
os.unlink(p / "lnk")
print("done")
