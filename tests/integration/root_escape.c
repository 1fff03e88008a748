/* Helper of the root-rename-race and root-link-rename cases (security_cases.py): a program run
 * under sbrun against an agent with --root, trying to reach what lies outside the root.
 *
 *   race SECONDS   for SECONDS, open and read a set of paths through /dir, which a helper on B
 *                  keeps renaming out of the root and back. Every read must give an INSIDE file
 *                  or fail; one line per path at the end: "PATH ok N fail N escaped N errnos
 *                  ...", then "escapes N". Content starting with OUTSIDE is an escape (printed
 *                  at once, "ESCAPE PATH: content").
 *   links-race SECONDS
 *                  for SECONDS, while /dir moves out of the root and back: link and rename
 *                  (plain and RENAME_EXCHANGE) with names reached through /dir and `..` or the
 *                  `up -> ../..` symlink, each undone when it worked; what a link or exchange
 *                  brought in is read: OUTSIDE is an escape. One line per operation as for
 *                  race, then "escapes N".
 *   links LOCALDIR link and rename (renameat2 with RENAME_NOREPLACE and RENAME_EXCHANGE) from
 *                  inside the root to outside it and back, through `..`, absolute paths and
 *                  symlinks; and between a remote path and LOCALDIR (a directory on this
 *                  machine). One line each: "NAME ok" or "NAME ERRNO".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *err_name(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EXDEV: return "EXDEV";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case ELOOP: return "ELOOP";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    default: return strerror(e);
  }
}

/* ---- race ------------------------------------------------------------------------------- */

enum { MAX_ERRNOS = 8 };
struct probe {
  const char *name;
  int dirfd; /* -2: relative to the cwd (/dir/sub, entered at the start) */
  const char *path;
  long ok, fail, escaped;
  int errnos[MAX_ERRNOS];
  long errno_counts[MAX_ERRNOS];
};

static void count_errno(struct probe *p, int e) {
  for (int i = 0; i < MAX_ERRNOS; i++) {
    if (p->errnos[i] == e || p->errno_counts[i] == 0) {
      p->errnos[i] = e;
      p->errno_counts[i]++;
      return;
    }
  }
}

static void try_probe(struct probe *p) {
  int fd = openat(p->dirfd == -2 ? AT_FDCWD : p->dirfd, p->path, O_RDONLY);
  if (fd < 0) {
    p->fail++;
    count_errno(p, errno);
    return;
  }
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) {
    p->fail++;
    count_errno(p, errno);
    return;
  }
  buf[n] = 0;
  if (strncmp(buf, "OUTSIDE", 7) == 0) {
    if (p->escaped++ < 3) {
      printf("ESCAPE %s: %s", p->name, buf);
    }
  } else if (strncmp(buf, "INSIDE", 6) == 0) {
    p->ok++;
  } else {
    p->fail++;
    count_errno(p, 0);
  }
}

static long rename2(const char *from, const char *to, unsigned flags) {
  return syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
}

/* Prints a probe's line (the same format as race). */
static void print_probe(const struct probe *p) {
  printf("%s ok %ld fail %ld escaped %ld errnos", p->name, p->ok, p->fail, p->escaped);
  for (int k = 0; k < MAX_ERRNOS && p->errno_counts[k] > 0; k++) {
    printf(" %s:%ld", p->errnos[k] ? err_name(p->errnos[k]) : "other-content",
           p->errno_counts[k]);
  }
  printf("\n");
}

/* After a link or exchange that worked: `path` must hold an INSIDE file. */
static void check_content(struct probe *p, const char *path) {
  char buf[64];
  int fd = open(path, O_RDONLY);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  if (fd >= 0) {
    close(fd);
  }
  if (n < 0) {
    printf("FAIL reading %s after %s: %s\n", path, p->name, err_name(errno));
    p->escaped++;
    return;
  }
  buf[n] = 0;
  if (strncmp(buf, "INSIDE", 6) != 0) {
    if (p->escaped++ < 3) {
      printf("ESCAPE %s: %s", p->name, buf);
    }
  } else {
    p->ok++;
  }
}

static void failed(struct probe *p) {
  p->fail++;
  count_errno(p, errno);
}

/* Retries an open while /dir may be away. */
static int open_eventually(const char *path, int flags) {
  double end = now() + 10;
  for (;;) {
    int fd = open(path, flags);
    if (fd >= 0 || now() > end) {
      return fd;
    }
    usleep(1000);
  }
}

static int race(double secs) {
  /* A directory fd and the cwd taken while /dir is inside; both may be moved out with it. */
  int sub = open_eventually("/dir/sub", O_RDONLY | O_DIRECTORY);
  int cwd = open_eventually("/dir/sub", O_PATH | O_DIRECTORY);
  if (sub < 0 || cwd < 0 || fchdir(cwd) != 0) {
    printf("FAIL cannot open /dir/sub: %s\n", err_name(errno));
    return 2;
  }
  struct probe probes[] = {
      /* The file itself, through /dir: INSIDE-FILE, or ENOENT while /dir is away. */
      {.name = "abs-file", .dirfd = AT_FDCWD, .path = "/dir/sub/file"},
      /* Where `..` lands: the root's marker, never one outside (OUTSIDE-...). */
      {.name = "abs-dotdot", .dirfd = AT_FDCWD, .path = "/dir/sub/../../marker"},
      {.name = "abs-dotdot-3", .dirfd = AT_FDCWD, .path = "/dir/sub/../../../marker"},
      {.name = "abs-dotdot-4", .dirfd = AT_FDCWD, .path = "/dir/sub/../../../../marker"},
      {.name = "abs-symlink-up", .dirfd = AT_FDCWD, .path = "/dir/sub/up/marker"},
      {.name = "dirfd-dotdot", .dirfd = sub, .path = "../../marker"},
      {.name = "dirfd-dotdot-4", .dirfd = sub, .path = "../../../../marker"},
      {.name = "dirfd-symlink-up", .dirfd = sub, .path = "up/marker"},
      {.name = "cwd-dotdot", .dirfd = -2, .path = "../../marker"},
      {.name = "cwd-symlink-up", .dirfd = -2, .path = "up/marker"},
      /* Names beneath a held directory: the same file wherever /dir is (security-model.md). */
      {.name = "dirfd-file", .dirfd = sub, .path = "file"},
      {.name = "cwd-file", .dirfd = -2, .path = "file"},
  };
  size_t count = sizeof probes / sizeof probes[0];
  double end = now() + secs;
  long rounds = 0;
  while (now() < end) {
    for (size_t i = 0; i < count; i++) {
      try_probe(&probes[i]);
    }
    rounds++;
  }
  long escapes = 0;
  for (size_t i = 0; i < count; i++) {
    print_probe(&probes[i]);
    escapes += probes[i].escaped;
  }
  printf("rounds %ld\nescapes %ld\n", rounds, escapes);
  return escapes == 0 ? 0 : 1;
}

static int links_race(double secs) {
  struct probe ops[] = {
      {.name = "link-to-dotdot", .dirfd = 0, .path = "/dir/sub/../../stolen-link"},
      {.name = "link-from-dotdot", .dirfd = 0, .path = "/dir/sub/../../../marker"},
      {.name = "rename-to-dotdot", .dirfd = 0, .path = "/dir/sub/../../moved"},
      {.name = "rename-from-symlink-up", .dirfd = 0, .path = "/dir/sub/up/marker"},
      {.name = "exchange-dotdot", .dirfd = 0, .path = "/dir/sub/../../../marker"},
      {.name = "exchange-symlink-up", .dirfd = 0, .path = "/dir/sub/up/marker"},
  };
  size_t count = sizeof ops / sizeof ops[0];
  double end = now() + secs;
  long rounds = 0;
  while (now() < end) {
    /* A hard link whose new name is reached through /dir and `..`: the root's own directory. */
    if (link("/data/file.txt", ops[0].path) == 0) {
      ops[0].ok++;
      if (unlink("/stolen-link") != 0) {
        printf("FAIL the link did not land in the root: %s\n", err_name(errno));
        ops[0].escaped++;
      }
    } else {
      failed(&ops[0]);
    }
    /* A link to what `..` names from /dir/sub: the root's marker, never one outside. */
    if (link(ops[1].path, "/data/got") == 0) {
      check_content(&ops[1], "/data/got");
      unlink("/data/got");
    } else {
      failed(&ops[1]);
    }
    if (rename("/data/file.txt", ops[2].path) == 0) {
      ops[2].ok++;
      if (rename("/moved", "/data/file.txt") != 0) {
        printf("FAIL the rename did not land in the root: %s\n", err_name(errno));
        ops[2].escaped++;
        break;
      }
    } else {
      failed(&ops[2]);
    }
    /* Rename the marker in (through the symlink) and put it back. */
    if (rename(ops[3].path, "/data/got-marker") == 0) {
      check_content(&ops[3], "/data/got-marker");
      if (rename("/data/got-marker", "/marker") != 0) {
        printf("FAIL putting the marker back: %s\n", err_name(errno));
        break;
      }
    } else {
      failed(&ops[3]);
    }
    for (size_t i = 4; i < 6; i++) {
      if (rename2("/data/swap.txt", ops[i].path, RENAME_EXCHANGE) == 0) {
        check_content(&ops[i], "/data/swap.txt");
        if (rename2("/data/swap.txt", "/marker", RENAME_EXCHANGE) != 0) {
          printf("FAIL exchanging back: %s\n", err_name(errno));
          ops[i].escaped++;
        }
      } else {
        failed(&ops[i]);
      }
    }
    rounds++;
  }
  long escapes = 0;
  for (size_t i = 0; i < count; i++) {
    print_probe(&ops[i]);
    escapes += ops[i].escaped;
  }
  printf("rounds %ld\nescapes %ld\n", rounds, escapes);
  return escapes == 0 ? 0 : 1;
}

/* ---- links ------------------------------------------------------------------------------ */

static void report(const char *name, long r) {
  if (r < 0) {
    printf("%s %s\n", name, err_name(errno));
  } else {
    printf("%s ok\n", name);
  }
}


static int links(const char *local) {
  char out_dir[256], out_secret[300], local_file[512], local_new[512];
  /* The same absolute paths as on B, outside the root: inside it they name nothing. */
  snprintf(out_dir, sizeof out_dir, "%s", getenv("SB_OUTSIDE_DIR") ? getenv("SB_OUTSIDE_DIR")
                                                                    : "/srv/sb-b/outdir");
  snprintf(out_secret, sizeof out_secret, "%s/secret.txt", out_dir);
  snprintf(local_file, sizeof local_file, "%s/local.txt", local);
  snprintf(local_new, sizeof local_new, "%s/new", local);
  char p1[512], p2[512];

  /* link: inside -> outside */
  report("link-in-to-dotdot", link("/data/file.txt", "../outdir/stolen"));
  snprintf(p1, sizeof p1, "%s/stolen", out_dir);
  report("link-in-to-abs", link("/data/file.txt", p1));
  report("link-in-to-abs-symlink", link("/data/file.txt", "/abs-out/stolen"));
  report("link-in-to-rel-symlink", link("/data/file.txt", "/rel-out/stolen"));
  int data = open("/data", O_RDONLY | O_DIRECTORY);
  report("linkat-in-to-dirfd-dotdot",
         linkat(AT_FDCWD, "/data/file.txt", data, "../../outdir/stolen", 0));
  /* link: outside -> inside */
  report("link-out-dotdot-to-in", link("../outdir/secret.txt", "/data/got"));
  report("link-out-abs-to-in", link(out_secret, "/data/got"));
  report("linkat-follow-abs-symlink-to-in",
         linkat(AT_FDCWD, "/abs-secret", AT_FDCWD, "/data/got", AT_SYMLINK_FOLLOW));
  report("linkat-follow-rel-symlink-to-in",
         linkat(AT_FDCWD, "/rel-secret", AT_FDCWD, "/data/got", AT_SYMLINK_FOLLOW));
  report("linkat-dirfd-dotdot-to-in",
         linkat(data, "../../outdir/secret.txt", AT_FDCWD, "/data/got", 0));
  /* Without AT_SYMLINK_FOLLOW the symlink itself is linked: inside, harmless. */
  report("linkat-nofollow-symlink", linkat(AT_FDCWD, "/abs-secret", AT_FDCWD, "/data/got-link", 0));

  /* rename: inside -> outside */
  report("rename-in-to-dotdot", rename("/data/file2.txt", "../outdir/moved"));
  snprintf(p1, sizeof p1, "%s/moved", out_dir);
  report("rename-in-to-abs", rename("/data/file2.txt", p1));
  report("rename-in-to-abs-symlink", rename("/data/file2.txt", "/abs-out/moved"));
  report("rename-in-to-rel-symlink", rename("/data/file2.txt", "/rel-out/moved"));
  report("renameat-in-to-dirfd-dotdot",
         renameat(AT_FDCWD, "/data/file2.txt", data, "../../outdir/moved"));
  report("rename-noreplace-in-to-abs", rename2("/data/file2.txt", p1, RENAME_NOREPLACE));
  /* rename: outside -> inside */
  report("rename-out-dotdot-to-in", rename("../outdir/secret.txt", "/data/got2"));
  report("rename-out-abs-to-in", rename(out_secret, "/data/got2"));
  report("rename-outdir-abs-to-in", rename(out_dir, "/data/outdir"));
  snprintf(p2, sizeof p2, "%s/secret.txt", "/abs-out");
  report("rename-out-via-symlink-to-in", rename(p2, "/data/got2"));
  /* RENAME_EXCHANGE across the boundary, both ways */
  report("exchange-in-dotdot", rename2("/data/file2.txt", "../outdir/secret.txt",
                                       RENAME_EXCHANGE));
  report("exchange-in-abs", rename2("/data/file2.txt", out_secret, RENAME_EXCHANGE));
  report("exchange-abs-in", rename2(out_secret, "/data/file2.txt", RENAME_EXCHANGE));
  report("exchange-via-symlink", rename2("/abs-out/secret.txt", "/data/file2.txt",
                                         RENAME_EXCHANGE));
  report("exchange-dir-out", rename2("/data/sub", out_dir, RENAME_EXCHANGE));
  /* The symlink itself moves (the last component is never followed): inside, harmless. */
  report("rename-symlink-itself", rename("/abs-out", "/data/abs-out-moved"));

  /* Between B (the root) and this machine: a remote path and a local one. */
  report("link-remote-to-local", link("/data/file.txt", local_new));
  report("link-local-to-remote", link(local_file, "/data/from-local"));
  report("rename-remote-to-local", rename("/data/file2.txt", local_new));
  report("rename-local-to-remote", rename(local_file, "/data/from-local"));
  report("exchange-remote-local", rename2("/data/file2.txt", local_file, RENAME_EXCHANGE));

  /* What must still work inside. */
  report("link-inside", link("/data/file.txt", "/data/hard"));
  report("rename-inside", rename("/data/file2.txt", "/data/sub/file2.txt"));
  report("exchange-inside", rename2("/data/sub/file2.txt", "/data/file.txt", RENAME_EXCHANGE));
  report("rename-inside-dotdot", rename("/data/sub/../hard", "/data/../data/hard2"));
  close(data);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "race") == 0) {
    return race(atof(argv[2]));
  }
  if (argc >= 3 && strcmp(argv[1], "links-race") == 0) {
    return links_race(atof(argv[2]));
  }
  if (argc >= 3 && strcmp(argv[1], "links") == 0) {
    return links(argv[2]);
  }
  fprintf(stderr, "usage: root_escape race SECONDS | links-race SECONDS | links LOCALDIR\n");
  return 2;
}
