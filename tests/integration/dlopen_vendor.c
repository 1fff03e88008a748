/* Loads a library by name with dlopen and calls into it (case dlopen-remote). Prints what the
 * library says and the path the loader found it at; exit 1 with dlerror() when it cannot. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "libsbvendor.so";
  void *h = dlopen(name, RTLD_NOW);
  if (h == NULL) {
    printf("dlopen failed: %s\n", dlerror());
    return 1;
  }
  const char *(*where)(void) = (const char *(*)(void))dlsym(h, "vendor_where");
  const char *(*loaded)(void) = (const char *(*)(void))dlsym(h, "vendor_loaded");
  int (*next)(void) = (int (*)(void))dlsym(h, "vendor_next");
  if (where == NULL || loaded == NULL || next == NULL) {
    printf("dlsym failed: %s\n", dlerror());
    return 1;
  }
  Dl_info info;
  if (dladdr((void *)where, &info) == 0) {
    printf("dladdr failed\n");
    return 1;
  }
  int a = next();
  int b = next();
  printf("%s, %s, %d %d, from %s\n", where(), loaded(), a, b, info.dli_fname);
  return dlclose(h) == 0 ? 0 : 1;
}
