/* A pool of worker threads for the UNet kernels (threadpool.c).  Not
 * installed. */
#ifndef DIFFUSE_THREADPOOL_H
#define DIFFUSE_THREADPOOL_H

#include <glib.h>

G_BEGIN_DECLS

/* A small pool of worker threads that runs every kernel of layers.h, GEMMs
 * included (each thread calls OpenBLAS single-threaded on its share).
 * Work is split into contiguous ranges of independent units (rows,
 * groups, channels, products), so results do not depend on the number of
 * threads.  Workers spin briefly after a job, then sleep on a condition
 * variable.  Every kernel takes the pool first; NULL runs serially
 * (and leaves any threading to OpenBLAS). */
typedef struct _DiffusePool DiffusePool;
/* part: 0 .. threads − 1, which thread runs this range (for per-thread
 * scratch) */
typedef void (*DiffuseRangeFunc) (gpointer data, gsize begin, gsize end,
                                  gint part);

/* The thread count of a run that asks for n_threads (0: the default),
 * 1..DIFFUSE_MAX_THREADS.  The default is the count OpenBLAS would have
 * used (OPENBLAS_NUM_THREADS, else the cores).  The first call sets
 * OpenBLAS, once for the process, to one thread: the kernels call it
 * from the pool's threads, each on its own share.  Thread-safe. */
#define DIFFUSE_MAX_THREADS 64
gint diffuse__threads_for_run (gint n_threads);

/* n_threads − 1 workers (none for n_threads ≤ 1). */
DiffusePool *diffuse__pool_new (gint n_threads);
void diffuse__pool_free (DiffusePool *pool);
gint diffuse__pool_get_n_threads (const DiffusePool *pool);
/* Threads the pool's next jobs use: 1..pool size. */
void diffuse__pool_set_active (DiffusePool *pool, gint n_threads);
gint diffuse__pool_get_active (const DiffusePool *pool);
/* fn (data, begin, end, part) over [0, n), split across the active
 * threads.  The kernels call OpenBLAS from these threads, so
 * OpenBLAS itself should run single-threaded (diffuse__threads_for_run
 * sees to that). */
void diffuse__pool_run (DiffusePool *pool, gsize n, DiffuseRangeFunc fn,
                        gpointer data);

G_END_DECLS

#endif /* DIFFUSE_THREADPOOL_H */
