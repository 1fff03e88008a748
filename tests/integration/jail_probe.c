/* jail_probe: what a program run on B by a session can reach (issue 17), for the isolation
 * cases in security_cases.py. Static, so it runs inside a bare --root. One action per run; it
 * prints one line per result and exits 0 unless the arguments are wrong.
 *
 *   fork N           fork N children that wait; print "forked K errno E" (E: what stopped it),
 *                    then kill and reap them
 *   daemon SECS      fork a child that calls setsid() and sleeps SECS; print "daemon PID"
 *   kill PID         kill(PID, 0) and kill(PID, SIGKILL); print "kill0 R E" and "kill9 R E"
 *   mknod PATH       mknod(PATH, S_IFCHR, 1:11) (/dev/kmsg's numbers); print "mknod R E"
 *   caps             print "bnd sys_admin=A mknod=M sys_chroot=C dac_read_search=D nnp=N"
 *   abstract NAME    connect to the abstract unix socket NAME; print "connect R E"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

static int usage(void) {
  fprintf(stderr, "usage: jail_probe fork N | daemon SECS | kill PID | mknod PATH | caps | "
                  "abstract NAME\n");
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const char* what = argv[1];
  if (strcmp(what, "fork") == 0 && argc == 3) {
    int n = atoi(argv[2]);
    pid_t* kids = calloc((size_t)n, sizeof(pid_t));
    int made = 0, error = 0;
    for (; made < n; ++made) {
      pid_t p = fork();
      if (p == 0) {
        pause();
        _exit(0);
      }
      if (p < 0) {
        error = errno;
        break;
      }
      kids[made] = p;
    }
    printf("forked %d errno %d\n", made, error);
    fflush(stdout);
    for (int i = 0; i < made; ++i) kill(kids[i], SIGKILL);
    for (int i = 0; i < made; ++i) waitpid(kids[i], NULL, 0);
    return 0;
  }
  if (strcmp(what, "daemon") == 0 && argc == 3) {
    pid_t p = fork();
    if (p == 0) {
      setsid();
      /* Away from the session's stdio too, as a daemon would be. */
      close(0);
      close(1);
      close(2);
      sleep((unsigned)atoi(argv[2]));
      _exit(0);
    }
    printf("daemon %d\n", (int)p);
    return 0;
  }
  if (strcmp(what, "kill") == 0 && argc == 3) {
    pid_t p = (pid_t)atoi(argv[2]);
    int r = kill(p, 0);
    printf("kill0 %d %d\n", r, r < 0 ? errno : 0);
    r = kill(p, SIGKILL);
    printf("kill9 %d %d\n", r, r < 0 ? errno : 0);
    return 0;
  }
  if (strcmp(what, "mknod") == 0 && argc == 3) {
    int r = mknod(argv[2], S_IFCHR | 0600, makedev(1, 11));
    printf("mknod %d %d\n", r, r < 0 ? errno : 0);
    return 0;
  }
  if (strcmp(what, "caps") == 0 && argc == 2) {
    printf("bnd sys_admin=%d mknod=%d sys_chroot=%d dac_read_search=%d nnp=%d\n",
           prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN), prctl(PR_CAPBSET_READ, CAP_MKNOD),
           prctl(PR_CAPBSET_READ, CAP_SYS_CHROOT), prctl(PR_CAPBSET_READ, CAP_DAC_READ_SEARCH),
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    return 0;
  }
  if (strcmp(what, "abstract") == 0 && argc == 3) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t len = strlen(argv[2]);
    if (len > sizeof(sun.sun_path) - 1) return usage();
    memcpy(sun.sun_path + 1, argv[2], len);
    int r = connect(s, (struct sockaddr*)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len));
    printf("connect %d %d\n", r, r < 0 ? errno : 0);
    return 0;
  }
  return usage();
}
