/* A "vendor" library that exists only on B (case dlopen-remote): loaded by a local program
 * through dlopen, its bytes come from the agent's root via the fallback rule for /usr/lib and
 * mmap of a remote file. Data, relocations and a constructor show it was really linked. */
#include <stdio.h>

static int counter = 41;
static char loaded[32];

__attribute__((constructor)) static void on_load(void) { snprintf(loaded, sizeof loaded, "ctor-ran"); }

const char *vendor_where(void) { return "vendor library from B"; }
const char *vendor_loaded(void) { return loaded; }
int vendor_next(void) { return ++counter; }
