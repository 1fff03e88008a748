/* A program that starts as root and drops to nobody (setgroups, setgid, setuid; the way
 * privilege-separated daemons and permission tests do) is checked by B's kernel as nobody from
 * then on: access by real ids, creates and removals in a directory only root may write, the
 * owner of what it creates, the setgid bit a non-member cannot keep, O_NOATIME on a file it
 * does not own, the umask across umask() and fork, a second thread (glibc changes every
 * thread's ids), and a program it runs. Run as root (natively and under sbrun against a root
 * agent); as another user it only says so. */
#include "util.h"

#include <pthread.h>
#include <grp.h>

#define NOBODY 65534

static void show_owner(const char *label, const char *path) {
  struct stat st;
  check_ok(lstat(path, &st));
  obs("%s: uid %u gid %u mode %04o", label, (unsigned)st.st_uid, (unsigned)st.st_gid,
      (unsigned)(st.st_mode & 07777));
}

static void *thread_checks(void *arg) {
  (void)arg;
  /* Runs after the main thread dropped: glibc moved this thread to nobody too. */
  check_err("thread: access W_OK rootfile", access(P("rootfile"), W_OK), EACCES);
  check_err("thread: creat in rootonly", creat(P("rootonly/t"), 0644), EACCES);
  return NULL;
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static void *waiting_thread(void *arg) {
  pthread_mutex_lock(&gate);
  pthread_mutex_unlock(&gate);
  return thread_checks(arg);
}

int main(int argc, char **argv) {
  test_init(argc, argv, "creds_drop");
  if (geteuid() != 0) {
    obs("not root: nothing to drop");
    test_done();
  }
  /* As root: a file and a directory only root may write, a directory anyone may write. */
  write_file(P("rootfile"), "root's\n", 0644);
  check_ok(mkdir(P("rootonly"), 0755));
  check_ok(mkdir(P("rootonly/sub"), 0755));
  write_file(P("rootonly/victim"), "v\n", 0644);
  check_ok(mkdir(P("open"), 0777));
  check_ok(chmod(P("open"), 0777)); /* past the umask */
  check_ok(mkdir(P("private"), 0700));
  write_file(P("open/nobodys"), "n\n", 0644);
  check_ok(chown(P("open/nobodys"), NOBODY, 0)); /* group root: nobody is not a member */
  check_ok(chmod(test_dir, 0755));
  check_ok(access(P("rootfile"), W_OK));
  check_ok(access(P("rootonly"), W_OK));
  int fd = check_ok(open(P("rootonly/made-by-root"), O_CREAT | O_WRONLY, 0644));
  close(fd);
  show_owner("root's file", P("rootonly/made-by-root"));

  pthread_t other;
  pthread_mutex_lock(&gate);
  check_ok(pthread_create(&other, NULL, waiting_thread, NULL) == 0 ? 0 : -1);

  /* Drop. */
  check_ok(setgroups(0, NULL));
  check_ok(setgid(NOBODY));
  check_ok(setuid(NOBODY));
  obs("now uid %u gid %u", (unsigned)getuid(), (unsigned)getgid());
  pthread_mutex_unlock(&gate);
  check_ok(pthread_join(other, NULL) == 0 ? 0 : -1);

  check_ok(access(P("rootfile"), R_OK));
  check_err("access W_OK rootfile", access(P("rootfile"), W_OK), EACCES);
  check_err("faccessat2 AT_EACCESS W_OK", syscall(SYS_faccessat2, AT_FDCWD, P("rootfile"), W_OK,
                                                  AT_EACCESS), EACCES);
  check_err("open rootfile O_WRONLY", open(P("rootfile"), O_WRONLY), EACCES);
  check_err("open rootfile O_NOATIME", open(P("rootfile"), O_RDONLY | O_NOATIME), EPERM);
  check_err("creat in rootonly", creat(P("rootonly/new"), 0644), EACCES);
  check_err("mkdir in rootonly", mkdir(P("rootonly/newdir"), 0755), EACCES);
  /* A file it owns: linking root's would be EPERM (protected_hardlinks) before the check. */
  check_err("link into rootonly", link(P("open/nobodys"), P("rootonly/link")), EACCES);
  check_err("rename out of rootonly", rename(P("rootonly/victim"), P("open/victim")), EACCES);
  check_err("unlink in rootonly", unlink(P("rootonly/victim")), EACCES);
  check_err("rmdir in rootonly", rmdir(P("rootonly/sub")), EACCES);
  check_err("symlink in rootonly", symlink("x", P("rootonly/sym")), EACCES);
  check_err("truncate rootfile", truncate(P("rootfile"), 0), EACCES);
  check_err("chmod rootfile", chmod(P("rootfile"), 0600), EPERM);
  check_err("chown to self", chown(P("open/nobodys"), 0, -1), EPERM);
  check_err("stat in private", ({ struct stat st; stat(P("private/x"), &st); }), EACCES);
  check_err("chdir private", chdir(P("private")), EACCES);

  /* What nobody may do, and what it gets. */
  fd = check_ok(open(P("open/created"), O_CREAT | O_WRONLY, 0666));
  close(fd);
  show_owner("created by nobody", P("open/created"));
  check_ok(mkdir(P("open/dir"), 0777));
  show_owner("mkdir by nobody", P("open/dir"));
  check_ok(symlink("created", P("open/sym")));
  show_owner("symlink by nobody", P("open/sym"));
  check_ok(chmod(P("open/nobodys"), 02755));
  show_owner("setgid by a non-member", P("open/nobodys"));

  /* umask: after umask(), and in a child that sets its own. */
  umask(027);
  fd = check_ok(open(P("open/umask027"), O_CREAT | O_WRONLY, 0666));
  close(fd);
  show_owner("umask 027", P("open/umask027"));
  pid_t pid = check_ok(fork());
  if (pid == 0) {
    fd = open(P("open/child-inherited"), O_CREAT | O_WRONLY, 0666);
    test_assert(fd >= 0);
    close(fd);
    umask(077);
    test_assert(mkdir(P("open/child077"), 0777) == 0);
    _exit(0);
  }
  reap(pid);
  show_owner("child, inherited umask", P("open/child-inherited"));
  show_owner("child, umask 077", P("open/child077"));
  umask(022);

  /* A program it runs starts as nobody. */
  fflush(stdout);
  pid = check_ok(fork());
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", "echo program: $(id -u) $(id -g) groups $(id -G)", (char *)NULL);
    _exit(127);
  }
  reap(pid);
  test_done();
}
