/* Counter-based PRNG: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel
 * random numbers: as easy as 1, 2, 3", SC 2011; the Random123 library) and
 * Box-Muller normals, exactly as docs/DESIGN.md "PRNG" specifies, so that
 * tools/diffref/rng.py (numpy) reproduces every number.
 *
 * Element i of stream s under seed k is a pure function of (k, s, i): no
 * state is kept anywhere, so any chunking or thread split of a request gives
 * the same numbers, and two runs never interfere.
 */
#include <math.h>

#include "diffuse-private.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

/* One Philox4x32 round (Random123 philox4x32round). */
static inline void
philox_round (guint32 c[4], const guint32 k[2])
{
  guint64 p0 = (guint64) PHILOX_M0 * c[0];
  guint64 p1 = (guint64) PHILOX_M1 * c[2];
  guint32 hi0 = (guint32) (p0 >> 32), lo0 = (guint32) p0;
  guint32 hi1 = (guint32) (p1 >> 32), lo1 = (guint32) p1;

  c[0] = hi1 ^ c[1] ^ k[0];
  c[1] = lo1;
  c[2] = hi0 ^ c[3] ^ k[1];
  c[3] = lo0;
}

void
diffuse__philox4x32_10 (const guint32 ctr[4], const guint32 key[2],
                        guint32 out[4])
{
  guint32 c[4] = { ctr[0], ctr[1], ctr[2], ctr[3] };
  guint32 k[2] = { key[0], key[1] };

  for (int r = 0; r < 10; r++)
    {
      philox_round (c, k);
      k[0] += PHILOX_W0;
      k[1] += PHILOX_W1;
    }
  for (int j = 0; j < 4; j++)
    out[j] = c[j];
}

/* Block b of stream s: counter (b lo, b hi, s lo, s hi), key (seed lo, seed hi). */
static inline void
philox_block (guint64 seed, guint64 stream, guint64 block, guint32 out[4])
{
  const guint32 ctr[4] = { (guint32) block, (guint32) (block >> 32),
                           (guint32) stream, (guint32) (stream >> 32) };
  const guint32 key[2] = { (guint32) seed, (guint32) (seed >> 32) };

  diffuse__philox4x32_10 (ctr, key, out);
}

/* U = (u + 0.5) / 2^32: strictly inside (0, 1), so log U is finite. */
static inline double
to_unit (guint32 u)
{
  return ((double) u + 0.5) * (1.0 / 4294967296.0);
}

static inline void
uniform_block (guint64 seed, guint64 stream, guint64 block, double u[4])
{
  guint32 raw[4];

  philox_block (seed, stream, block, raw);
  for (int j = 0; j < 4; j++)
    u[j] = to_unit (raw[j]);
}

/* Box-Muller in double on (U0, U1) and (U2, U3), then cast to float. */
static inline void
normal_block (guint64 seed, guint64 stream, guint64 block, float z[4])
{
  double u[4];

  uniform_block (seed, stream, block, u);
  for (int j = 0; j < 4; j += 2)
    {
      double r = sqrt (-2.0 * log (u[j]));
      double th = 2.0 * G_PI * u[j + 1];

      z[j] = (float) (r * cos (th));
      z[j + 1] = (float) (r * sin (th));
    }
}

/* Element i is lane i % 4 of block i / 4; a request starting or ending in
 * the middle of a block computes the whole block and keeps its lanes. */
void
diffuse_rng_normal (guint64 seed, guint64 stream, guint64 offset, float *out,
                    gsize n)
{
  gsize done = 0;

  g_return_if_fail (out != NULL || n == 0);

  while (done < n)
    {
      guint64 i = offset + done;
      guint lane = (guint) (i & 3);
      float z[4];

      normal_block (seed, stream, i >> 2, z);
      for (; lane < 4 && done < n; lane++)
        out[done++] = z[lane];
    }
}

void
diffuse_rng_uniform (guint64 seed, guint64 stream, guint64 offset, double *out,
                     gsize n)
{
  gsize done = 0;

  g_return_if_fail (out != NULL || n == 0);

  while (done < n)
    {
      guint64 i = offset + done;
      guint lane = (guint) (i & 3);
      double u[4];

      uniform_block (seed, stream, i >> 2, u);
      for (; lane < 4 && done < n; lane++)
        out[done++] = u[lane];
    }
}
