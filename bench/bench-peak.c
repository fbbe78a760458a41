/* The machine's arithmetic peaks, for the fraction-of-peak figures of
 * bench/README.md: a loop of independent AVX-512 FMAs (vfmadd231ps, 16
 * multiply-adds, 32 FLOP each; on a CPU without AVX-512, AVX2 FMAs on ymm
 * registers, 8 multiply-adds, 16 FLOP each) and of AVX512_BF16 dot products
 * (vdpbf16ps, 32 bf16 multiply-adds into 16 fp32 lanes, 64 FLOP each),
 * on 1 and on N threads.
 *
 *   bench-peak [--threads N] [--seconds S]
 *
 * Prints GFLOP/s for each; the bf16 line says "not supported" on a CPU
 * without AVX512_BF16.  Built with target attributes, so it compiles
 * anywhere gcc targets x86-64, and only runs each loop where cpuid says
 * the CPU has it.  Other architectures: prints that there is nothing to
 * measure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define ACC 12      /* independent accumulators: covers the latency */
#define ITERS 65536 /* per call */

/* each call: ITERS·ACC instructions of 16 fp32 FMAs */
__attribute__ ((target ("avx512f"), noinline)) static float
fma_loop (float seed)
{
  __m512 acc[ACC], a = _mm512_set1_ps (seed), b = _mm512_set1_ps (0.999f);

  for (gint i = 0; i < ACC; i++)
    acc[i] = _mm512_set1_ps ((float) i);
  for (gint it = 0; it < ITERS; it++)
#pragma GCC unroll 16
    for (gint i = 0; i < ACC; i++)
      acc[i] = _mm512_fmadd_ps (a, b, acc[i]);
  for (gint i = 1; i < ACC; i++)
    acc[0] = _mm512_add_ps (acc[0], acc[i]);
  return _mm512_reduce_add_ps (acc[0]);
}

/* each call: ITERS·ACC instructions of 8 fp32 FMAs (AVX2 machines) */
__attribute__ ((target ("avx2,fma"), noinline)) static float
fma256_loop (float seed)
{
  __m256 acc[ACC], a = _mm256_set1_ps (seed), b = _mm256_set1_ps (0.999f);
  float lanes[8], sum = 0.0f;

  for (gint i = 0; i < ACC; i++)
    acc[i] = _mm256_set1_ps ((float) i);
  for (gint it = 0; it < ITERS; it++)
#pragma GCC unroll 16
    for (gint i = 0; i < ACC; i++)
      acc[i] = _mm256_fmadd_ps (a, b, acc[i]);
  for (gint i = 1; i < ACC; i++)
    acc[0] = _mm256_add_ps (acc[0], acc[i]);
  _mm256_storeu_ps (lanes, acc[0]);
  for (gint i = 0; i < 8; i++)
    sum += lanes[i];
  return sum;
}

/* each call: ITERS·ACC instructions of 32 bf16 multiply-adds */
__attribute__ ((target ("avx512f,avx512bf16"), noinline)) static float
dpbf16_loop (float seed)
{
  __m512 acc[ACC];
  __m512bh a =
      _mm512_cvtne2ps_pbh (_mm512_set1_ps (seed), _mm512_set1_ps (seed));
  __m512bh b =
      _mm512_cvtne2ps_pbh (_mm512_set1_ps (0.999f), _mm512_set1_ps (0.999f));

  for (gint i = 0; i < ACC; i++)
    acc[i] = _mm512_set1_ps ((float) i);
  for (gint it = 0; it < ITERS; it++)
#pragma GCC unroll 16
    for (gint i = 0; i < ACC; i++)
      acc[i] = _mm512_dpbf16_ps (acc[i], a, b);
  for (gint i = 1; i < ACC; i++)
    acc[0] = _mm512_add_ps (acc[0], acc[i]);
  return _mm512_reduce_add_ps (acc[0]);
}

typedef enum
{
  LOOP_FMA512,
  LOOP_FMA256,
  LOOP_DPBF16
} Loop;

/* FLOP per instruction of each loop */
static const double loop_flop[] = { 32.0, 16.0, 64.0 };

typedef struct
{
  Loop loop;
  double seconds;
  guint64 calls;
  float sink;
} Run;

static gpointer
run_thread (gpointer data)
{
  Run *r = data;
  gint64 end = g_get_monotonic_time () + (gint64) (r->seconds * 1e6);

  do
    {
      r->sink += r->loop == LOOP_DPBF16   ? dpbf16_loop (1e-3f)
                 : r->loop == LOOP_FMA256 ? fma256_loop (1e-3f)
                                          : fma_loop (1e-3f);
      r->calls++;
    }
  while (g_get_monotonic_time () < end);
  return NULL;
}

/* GFLOP/s of n threads running the loop for s seconds */
static double
measure (Loop loop, gint n, double s)
{
  GThread *th[64];
  Run runs[64];
  gint64 t0 = g_get_monotonic_time ();
  double flops = 0.0;

  for (gint i = 0; i < n; i++)
    {
      runs[i] = (Run){ loop, s, 0, 0.0f };
      th[i] = g_thread_new ("peak", run_thread, &runs[i]);
    }
  for (gint i = 0; i < n; i++)
    g_thread_join (th[i]);
  for (gint i = 0; i < n; i++)
    flops += (double) runs[i].calls * ITERS * ACC * loop_flop[loop];
  return flops / ((g_get_monotonic_time () - t0) * 1e-6) * 1e-9;
}

int
main (int argc, char **argv)
{
  gint threads = 2;
  double seconds = 1.0;

  for (gint i = 1; i < argc; i++)
    if (i + 1 < argc && strcmp (argv[i], "--threads") == 0)
      threads = atoi (argv[++i]);
    else if (i + 1 < argc && strcmp (argv[i], "--seconds") == 0)
      seconds = atof (argv[++i]);
    else
      {
        g_printerr ("usage: bench-peak [--threads N] [--seconds S]\n");
        return 2;
      }
  if (threads < 1 || threads > 64 || !(seconds > 0.0))
    {
      g_printerr ("bench-peak: threads must be 1..64, seconds > 0\n");
      return 2;
    }
  __builtin_cpu_init ();
  if (!__builtin_cpu_supports ("avx512f"))
    {
      if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
        printf ("fp32 FMA (vfmadd231ps ymm):   1 thread %6.0f GFLOP/s, "
                "%d threads %6.0f GFLOP/s\n",
                measure (LOOP_FMA256, 1, seconds), threads,
                measure (LOOP_FMA256, threads, seconds));
      else
        printf ("fp32 FMA: not measured (neither AVX-512F nor AVX2+FMA)\n");
      printf ("bf16 dot (vdpbf16ps): not supported by this CPU\n");
      return 0;
    }
  printf ("fp32 FMA (vfmadd231ps zmm):   1 thread %6.0f GFLOP/s, "
          "%d threads %6.0f GFLOP/s\n",
          measure (LOOP_FMA512, 1, seconds), threads,
          measure (LOOP_FMA512, threads, seconds));
  if (__builtin_cpu_supports ("avx512bf16"))
    printf ("bf16 dot (vdpbf16ps zmm):     1 thread %6.0f GFLOP/s, "
            "%d threads %6.0f GFLOP/s\n",
            measure (LOOP_DPBF16, 1, seconds), threads,
            measure (LOOP_DPBF16, threads, seconds));
  else
    printf ("bf16 dot (vdpbf16ps): not supported by this CPU\n");
  return 0;
}
#else
int
main (void)
{
  printf ("bench-peak: measures x86-64 AVX2/AVX-512 only; nothing to do "
          "here\n");
  return 0;
}
#endif
