/* A main() for the fuzz targets without libFuzzer: runs the target once on
 * each file named (or each file in each folder named), so the corpora and
 * recorded crashes run as regression tests in every build, gcc's included.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t len);

static int
run_file (const char *path)
{
  FILE *f = fopen (path, "rb");
  if (!f) {
    perror (path);
    return -1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, got;
  do {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      buf = realloc (buf, cap);
      if (!buf)
        abort ();
    }
    got = fread (buf + len, 1, cap - len, f);
    len += got;
  } while (got > 0);
  fclose (f);
  LLVMFuzzerTestOneInput (buf, len);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int runs = 0;
  for (int a = 1; a < argc; a++) {
    struct stat st;
    if (stat (argv[a], &st) != 0) {
      perror (argv[a]);
      return 1;
    }
    if (!S_ISDIR (st.st_mode)) {
      if (run_file (argv[a]) != 0)
        return 1;
      runs++;
      continue;
    }
    DIR *d = opendir (argv[a]);
    struct dirent *e;
    while (d && (e = readdir (d)) != NULL) {
      char path[4096];
      if (e->d_name[0] == '.')
        continue;
      snprintf (path, sizeof path, "%s/%s", argv[a], e->d_name);
      if (run_file (path) != 0)
        return 1;
      runs++;
    }
    if (d)
      closedir (d);
  }
  printf ("%d inputs replayed\n", runs);
  return runs > 0 ? 0 : 1;
}
