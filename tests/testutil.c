#include "testutil.h"

#include <stdlib.h>
#include <string.h>

int
nnic_test_run (Suite *s)
{
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *
nnic_test_tmpdir (void)
{
  GError *err = NULL;
  char *dir = g_dir_make_tmp ("nnic-test-XXXXXX", &err);
  ck_assert_msg (dir != NULL, "cannot make a temporary directory: %s", err ? err->message : "");
  return dir;
}

char *
nnic_test_write (const char *dir, const char *name, const void *data, size_t len)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;
  ck_assert_msg (g_file_set_contents (path, data, (gssize) len, &err), "cannot write %s: %s", path,
                 err ? err->message : "");
  return path;
}
