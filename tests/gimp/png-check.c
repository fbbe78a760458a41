/* diffuse-png-check: pixel checks for the GIMP batch tests.
 *
 *   diffuse-png-check info A.png
 *       prints "WIDTH HEIGHT CHANNELS"
 *   diffuse-png-check diff A.png B.png [CHANNELS [X Y W H]]
 *       loads both as CHANNELS (default: A's own; grey <-> RGB and alpha
 *       converted by diffuse_png_load), optionally over a region, and
 *       prints "max MAX mean MEAN" in 0..255 levels
 *   diffuse-png-check same A.png B.png TOL [CHANNELS [X Y W H]]
 *       exit 0 when every value differs by at most TOL levels
 *   diffuse-png-check differ A.png B.png TOL [CHANNELS [X Y W H]]
 *       exit 0 when the mean difference exceeds TOL levels
 * Sizes must match (exit 1 with a message otherwise). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffuse.h"

static int
usage (void)
{
  fprintf (stderr,
           "usage: diffuse-png-check info A | diff A B [C [X Y W H]] | "
           "same A B TOL [C [X Y W H]] | differ A B TOL [C [X Y W H]]\n");
  return 2;
}

int
main (int argc, char **argv)
{
  g_autofree float *a = NULL, *b = NULL;
  GError *error = NULL;
  gint ca, ha, wa, hb, wb, channels = 0, x0 = 0, y0 = 0, rw = 0, rh = 0, arg;
  double tol = 0.0, max = 0.0, sum = 0.0;
  gsize n = 0;
  const char *cmd;
  gint c, y, x;

  if (argc < 3)
    return usage ();
  cmd = argv[1];
  if (strcmp (cmd, "info") == 0)
    {
      a = diffuse_png_load (argv[2], 0, &ca, &ha, &wa, &error);
      if (a == NULL)
        goto fail;
      printf ("%d %d %d\n", wa, ha, ca);
      return 0;
    }
  if (argc < 4)
    return usage ();
  arg = 4;
  if (strcmp (cmd, "same") == 0 || strcmp (cmd, "differ") == 0)
    {
      if (argc < 5)
        return usage ();
      tol = atof (argv[arg++]);
    }
  else if (strcmp (cmd, "diff") != 0)
    return usage ();
  if (arg < argc)
    channels = atoi (argv[arg++]);
  if (arg + 4 <= argc)
    {
      x0 = atoi (argv[arg]);
      y0 = atoi (argv[arg + 1]);
      rw = atoi (argv[arg + 2]);
      rh = atoi (argv[arg + 3]);
    }

  a = diffuse_png_load (argv[2], channels, &ca, &ha, &wa, &error);
  if (a == NULL)
    goto fail;
  b = diffuse_png_load (argv[3], ca, NULL, &hb, &wb, &error);
  if (b == NULL)
    goto fail;
  if (ha != hb || wa != wb)
    {
      fprintf (stderr,
               "diffuse-png-check: sizes differ: %s is %dx%d, %s is %dx%d\n",
               argv[2], wa, ha, argv[3], wb, hb);
      return 1;
    }
  if (rw == 0)
    {
      rw = wa;
      rh = ha;
    }
  if (x0 < 0 || y0 < 0 || rw <= 0 || rh <= 0 || x0 + rw > wa || y0 + rh > ha)
    {
      fprintf (stderr, "diffuse-png-check: region outside the %dx%d image\n",
               wa, ha);
      return 2;
    }

  for (c = 0; c < ca; c++)
    for (y = y0; y < y0 + rh; y++)
      for (x = x0; x < x0 + rw; x++)
        {
          gsize i = ((gsize) c * ha + y) * wa + x;
          double d = fabs ((double) a[i] - b[i]) * 127.5;

          max = MAX (max, d);
          sum += d;
          n++;
        }
  printf ("max %.3f mean %.4f\n", max, sum / n);
  if (strcmp (cmd, "same") == 0)
    return max <= tol + 1e-6 ? 0 : 1;
  if (strcmp (cmd, "differ") == 0)
    return sum / n > tol ? 0 : 1;
  return 0;

fail:
  fprintf (stderr, "diffuse-png-check: %s\n", error->message);
  g_error_free (error);
  return 1;
}
