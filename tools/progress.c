#include "cli.h"

#include <stdio.h>
#include <unistd.h>

void
nnic_cli_progress_init (NnicCliProgress *p, gboolean quiet)
{
  *p = (NnicCliProgress) { .tty = isatty (STDERR_FILENO), .quiet = quiet };
}

static void
format_eta (char *buf, size_t len, double s)
{
  if (s >= 3600)
    g_snprintf (buf, len, "%dh%02dm", (int) (s / 3600), (int) (s / 60) % 60);
  else if (s >= 60)
    g_snprintf (buf, len, "%dm%02ds", (int) (s / 60), (int) s % 60);
  else
    g_snprintf (buf, len, "%ds", (int) (s + 0.5));
}

void
nnic_cli_progress_update (const NnicProgress *pr, gpointer user_data)
{
  NnicCliProgress *p = user_data;
  if (p->quiet)
    return;
  char eta[32], epoch[32];
  format_eta (eta, sizeof eta, pr->eta_s);
  /* "3/5", or just "3" when the caller does not know how many there are. */
  if (pr->n_epochs)
    g_snprintf (epoch, sizeof epoch, "%u/%u", pr->epoch + 1, pr->n_epochs);
  else
    g_snprintf (epoch, sizeof epoch, "%u", pr->epoch + 1);
  if (p->tty) {
    /* Redraw at most ten times a second: the terminal is slower than we are. */
    gint64 now = g_get_monotonic_time ();
    if (pr->batch != pr->n_batches && now - p->last_draw_us < 100000)
      return;
    p->last_draw_us = now;
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int filled = pr->n_batches ? (int) ((double) pr->batch / pr->n_batches * WIDTH) : WIDTH;
    for (int i = 0; i < WIDTH; i++)
      bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[WIDTH] = '\0';
    fprintf (stderr, "\r\033[Kepoch %s [%s] %u/%u  loss %.4f  %.0f img/s  ETA %s", epoch, bar, pr->batch,
             pr->n_batches, pr->loss, pr->images_per_s, eta);
    fflush (stderr);
    return;
  }
  guint step = MAX (1u, pr->n_batches / 10);
  if (pr->batch == pr->n_batches || pr->batch - p->last_line_batch >= step || pr->batch < p->last_line_batch) {
    p->last_line_batch = pr->batch;
    fprintf (stderr, "epoch %s batch %u/%u loss %.4f %.0f img/s ETA %s\n", epoch, pr->batch,
             pr->n_batches, pr->loss, pr->images_per_s, eta);
  }
}

void
nnic_cli_progress_finish (NnicCliProgress *p)
{
  if (p->tty && !p->quiet)
    fprintf (stderr, "\r\033[K");
  p->last_line_batch = 0;
}
