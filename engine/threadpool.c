/* The thread pool that runs the UNet kernels; see threadpool.h. */
#include <cblas.h>

#include "threadpool.h"

static gsize blas_once;
static gint default_threads;

gint
diffuse__threads_for_run (gint n_threads)
{
  if (g_once_init_enter (&blas_once))
    {
      /* what OpenBLAS chose from OPENBLAS_NUM_THREADS or the cores,
       * before it is set to one thread for good */
      default_threads = openblas_get_num_threads ();
      openblas_set_num_threads (1);
      g_once_init_leave (&blas_once, 1);
    }
  return CLAMP (n_threads > 0 ? n_threads : default_threads, 1,
                DIFFUSE_MAX_THREADS);
}

struct _DiffusePool
{
  gint n_workers;
  gint active; /* threads used per job, 1..n_workers + 1 */
  GThread **threads;
  GMutex lock;
  GCond start, done;
  gint generation;   /* bumped per job (atomic) */
  gint pending;      /* workers yet to finish this job (atomic) */
  gint sleepers;     /* workers waiting on start (atomic) */
  gint main_waiting; /* the caller waits on done (atomic) */
  gint quit;         /* atomic */
  DiffuseRangeFunc fn;
  gpointer data;
  gsize n;
  gint parts;
};

typedef struct
{
  DiffusePool *pool;
  gint index; /* 1..n_workers: this worker's part */
} Worker;

/* Layers follow each other within microseconds, so both sides spin a
 * little (about 0.1–0.5 ms) before sleeping on a condition variable: a
 * futex sleep and wake-up per layer cost 20 % of a small model's pass.
 * Sleeping and waking use the Dekker pattern on sequentially consistent
 * atomics (sleepers / generation, main_waiting / pending), so no wake-up
 * is lost. */
#define SPIN_ITERATIONS 20000

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

static gpointer
worker_main (gpointer user_data)
{
  Worker *self = user_data;
  DiffusePool *pool = self->pool;
  gint seen = 0;

  for (;;)
    {
      DiffuseRangeFunc fn;
      gpointer data;
      gsize n;
      gint parts;

      for (gint i = 0; i < SPIN_ITERATIONS &&
                       g_atomic_int_get (&pool->generation) == seen &&
                       !g_atomic_int_get (&pool->quit);
           i++)
        cpu_relax ();
      if (g_atomic_int_get (&pool->generation) == seen &&
          !g_atomic_int_get (&pool->quit))
        {
          g_mutex_lock (&pool->lock);
          g_atomic_int_inc (&pool->sleepers);
          while (g_atomic_int_get (&pool->generation) == seen &&
                 !g_atomic_int_get (&pool->quit))
            g_cond_wait (&pool->start, &pool->lock);
          g_atomic_int_add (&pool->sleepers, -1);
          g_mutex_unlock (&pool->lock);
        }
      if (g_atomic_int_get (&pool->quit))
        break;
      seen = g_atomic_int_get (&pool->generation);
      fn = pool->fn;
      data = pool->data;
      n = pool->n;
      parts = pool->parts;

      if (self->index < parts)
        fn (data, n * self->index / parts, n * (self->index + 1) / parts,
            self->index);
      /* every worker acknowledges every job, so none is still reading
       * this job's fields when the caller writes the next one's */
      if (g_atomic_int_dec_and_test (&pool->pending) &&
          g_atomic_int_get (&pool->main_waiting))
        {
          g_mutex_lock (&pool->lock);
          g_cond_signal (&pool->done);
          g_mutex_unlock (&pool->lock);
        }
    }
  g_free (self);
  return NULL;
}

DiffusePool *
diffuse__pool_new (gint n_threads)
{
  DiffusePool *pool = g_new0 (DiffusePool, 1);

  g_mutex_init (&pool->lock);
  g_cond_init (&pool->start);
  g_cond_init (&pool->done);
  pool->threads = g_new0 (GThread *, MAX (n_threads, 1));
  for (gint i = 1; i < n_threads; i++)
    {
      Worker *wk = g_new (Worker, 1);
      GThread *th;

      wk->pool = pool;
      wk->index = i;
      th = g_thread_try_new ("diffuse-worker", worker_main, wk, NULL);
      if (th == NULL)
        {
          g_free (wk);
          break; /* run with the threads we have */
        }
      pool->threads[pool->n_workers++] = th;
    }
  pool->active = pool->n_workers + 1;
  return pool;
}

void
diffuse__pool_free (DiffusePool *pool)
{
  if (pool == NULL)
    return;
  g_mutex_lock (&pool->lock);
  g_atomic_int_set (&pool->quit, TRUE);
  g_cond_broadcast (&pool->start);
  g_mutex_unlock (&pool->lock);
  for (gint i = 0; i < pool->n_workers; i++)
    g_thread_join (pool->threads[i]);
  g_free (pool->threads);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->start);
  g_cond_clear (&pool->done);
  g_free (pool);
}

gint
diffuse__pool_get_n_threads (const DiffusePool *pool)
{
  return pool ? pool->n_workers + 1 : 1;
}

void
diffuse__pool_set_active (DiffusePool *pool, gint n_threads)
{
  if (pool)
    pool->active = CLAMP (n_threads, 1, pool->n_workers + 1);
}

gint
diffuse__pool_get_active (const DiffusePool *pool)
{
  return pool ? pool->active : 1;
}

void
diffuse__pool_run (DiffusePool *pool, gsize n, DiffuseRangeFunc fn,
                   gpointer data)
{
  gint parts;

  if (n == 0)
    return;
  parts = pool ? (gint) MIN ((gsize) pool->active, n) : 1;
  if (parts <= 1)
    {
      fn (data, 0, n, 0);
      return;
    }
  /* the job's fields are published by the atomic generation bump */
  pool->fn = fn;
  pool->data = data;
  pool->n = n;
  pool->parts = parts;
  g_atomic_int_set (&pool->pending, pool->n_workers);
  g_atomic_int_inc (&pool->generation);
  if (g_atomic_int_get (&pool->sleepers) > 0)
    {
      g_mutex_lock (&pool->lock);
      g_cond_broadcast (&pool->start);
      g_mutex_unlock (&pool->lock);
    }

  fn (data, 0, n / parts, 0);

  for (gint i = 0; i < SPIN_ITERATIONS && g_atomic_int_get (&pool->pending) > 0;
       i++)
    cpu_relax ();
  if (g_atomic_int_get (&pool->pending) > 0)
    {
      g_mutex_lock (&pool->lock);
      g_atomic_int_set (&pool->main_waiting, TRUE);
      while (g_atomic_int_get (&pool->pending) > 0)
        g_cond_wait (&pool->done, &pool->lock);
      g_atomic_int_set (&pool->main_waiting, FALSE);
      g_mutex_unlock (&pool->lock);
    }
}
