/* Shared helpers of the Check suites. */
#pragma once

#include <check.h>
#include <nnic/nnic.h>

/* Runs a suite and returns the process exit status (0 when all passed). */
int nnic_test_run (Suite *s);

/* Fails the current test with the error's message when `err` is set. */
#define NNIC_ASSERT_NO_ERROR(err)                                                   \
  ck_assert_msg ((err) == NULL, "unexpected error: %s", (err) ? (err)->message : "")

/* Asserts an error of NNIC_ERROR / `code` whose message contains `needle`. */
#define NNIC_ASSERT_ERROR(err, ecode, needle)                                        \
  do {                                                                              \
    ck_assert_msg ((err) != NULL, "expected an error containing \"%s\"", (needle)); \
    ck_assert_msg ((err)->domain == NNIC_ERROR && (err)->code == (ecode),            \
                   "wrong error code %d (wanted %d): %s", (err)->code, (ecode),      \
                   (err)->message);                                                 \
    ck_assert_msg (strstr ((err)->message, (needle)) != NULL,                       \
                   "error \"%s\" does not mention \"%s\"", (err)->message, (needle)); \
  } while (0)

/* A fresh temporary directory (removed at exit by the test's teardown is not
 * needed: it lives under the build's tmp). Free with g_free. */
char *nnic_test_tmpdir (void);
/* Writes bytes to a file under dir and returns its path (g_free). */
char *nnic_test_write (const char *dir, const char *name, const void *data, size_t len);

/* A config list from JSON; fails the test on an error. Free with
 * nnic_config_list_free (or g_autoptr). */
NnicConfigList *nnic_test_config (const char *json);
/* One training step (forward, cross-entropy, backward, optimizer step) of a
 * 1x28x28 model on a random batch of 8 drawn from `seed`; returns the loss. */
double nnic_test_train_step (NnicModel *m, NnicOptimizer *opt, guint64 seed);
