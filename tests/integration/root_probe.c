/* Helper of the root-landlock case, linked statically so that it runs inside a bare --root:
 * prints B's /etc/hostname as seen from the root, writes /opt/written.txt, and prints its
 * no_new_privs flag (the agent sets PR_SET_NO_NEW_PRIVS for everything it starts). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(void) {
  char buf[128] = {0};
  int fd = open("/etc/hostname", O_RDONLY);
  if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0) {
    perror("root_probe: /etc/hostname");
    return 2;
  }
  close(fd);
  printf("hostname %s", buf);
  fd = open("/opt/written.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "from the probe\n", 15) != 15) {
    perror("root_probe: /opt/written.txt");
    return 3;
  }
  close(fd);
  printf("no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  return 0;
}
