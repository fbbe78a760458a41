/* Large scratch buffers (a UNet state's arena): aligned to 2 MiB and
 * marked for transparent huge pages where Linux has them, so that the
 * first pass over a few hundred MiB of fresh scratch takes a few hundred
 * page faults instead of tens of thousands (on the benchmark VM a fault
 * costs microseconds; bench/README.md). */
#include <stdlib.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "diffuse-private.h"

#define HUGE_PAGE ((gsize) 2 << 20)

void *
diffuse__scratch_alloc (gsize n_bytes)
{
  void *p = NULL;

  if (n_bytes < HUGE_PAGE)
    return g_try_malloc (MAX (n_bytes, 1));
  if (posix_memalign (&p, HUGE_PAGE, n_bytes) != 0)
    return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise (p, n_bytes, MADV_HUGEPAGE); /* advice only: failure is fine */
#endif
  return p;
}

void
diffuse__scratch_free (void *p)
{
  free (p); /* g_try_malloc's memory too: GLib uses the system malloc */
}
