/* Compile settings and inline helpers shared by the kernel files
 * (embedding.c, norm.c, conv.c, winograd.c, updown.c, attention.c,
 * layout.c).  Include it last, after every other header: its pragma
 * applies to the functions that follow.  Not installed. */
#ifndef DIFFUSE_KERNEL_INLINE_H
#define DIFFUSE_KERNEL_INLINE_H

#include <string.h>

#include <glib.h>

/* Without no-trapping-math, gcc does not if-convert the float compares of
 * the exp clamp (they might trap) and no loop that calls fast_expf
 * vectorises; nothing here relies on floating-point exceptions.  The
 * project builds with -std=c11, which turns off FMA contraction;
 * contracting a·b + c is as exact or better and twice as fast.  The copy
 * loops below are mostly short rows (8–64 floats), faster inline than as
 * the memcpy / memset calls gcc would otherwise turn them into. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "fp-contract=fast",                   \
                     "no-tree-loop-distribute-patterns")
#endif

/* The elementwise kernels are memory- and exp-bound; an AVX2/FMA clone,
 * picked at load time, runs them on 8 lanes where the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) &&          \
    !defined(__SANITIZE_THREAD__)
/* (ThreadSanitizer instruments the ifunc resolvers, which run before it
 * is initialised.) */
#define HOT __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

static inline void
copy_f (float *restrict dst, const float *restrict src, gsize n)
{
  for (gsize i = 0; i < n; i++)
    dst[i] = src[i];
}

static inline void
zero_f (float *dst, gsize n)
{
  for (gsize i = 0; i < n; i++)
    dst[i] = 0.0f;
}

/* exp (x) for x in float range, without libm so that loops calling it
 * vectorise: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2),
 * e^r by its degree-6 Taylor polynomial (relative error < 2e-7), then
 * 2^n put into the exponent bits.  Inputs are clamped to [-87, 88], so
 * the result is never 0, inf or denormal. */
static inline float
fast_expf (float x)
{
  const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to integer */
  float fn, r, p;
  gint32 bits;
  float scale;

  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  fn = x * 1.44269504088896341f + magic;
  fn -= magic;
  r = x - fn * 0.693145751953125f;
  r = r - fn * 1.428606765330187e-06f;
  p = 1.0f +
      r * (1.0f +
           r * (0.5f + r * (1.0f / 6.0f +
                            r * (1.0f / 24.0f +
                                 r * (1.0f / 120.0f + r * (1.0f / 720.0f))))));
  /* NaN in, NaN out (through p), without converting NaN to an integer
   * (undefined behaviour; UBSan reports it) */
  bits = ((fn == fn ? (gint32) fn : 0) + 127) << 23;
  memcpy (&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float
silu1 (float x)
{
  return x / (1.0f + fast_expf (-x));
}

#endif /* DIFFUSE_KERNEL_INLINE_H */
