/* <splitbrain.h> alone, with no feature-test macro before it: it must build as strict C11
 * (-std=c11 -Wall -Wextra -Wpedantic -Werror and more, see tests/meson.build), and twice. */
#include "splitbrain.h"
#include "splitbrain.h"

int api_header_only_probe(void);

/* Takes the address of every function, so a missing or misspelled one fails the build. */
int api_header_only_probe(void) {
  int (*enter)(const char*) = sb_enter;
  int (*local)(void) = sb_local;
  int (*leave)(void) = sb_exit;
  int (*scope)(char*, size_t) = sb_scope;
  int (*available)(void) = sb_available;
  return enter != NULL && local != NULL && leave != NULL && scope != NULL && available != NULL &&
         SB_NAME_MAX == 255;
}
