/* PNG and .npy input/output.
 *
 * PNG: decoded with libpng into planar float [1, C, H, W] in [-1, 1].
 * Every PNG colour type and bit depth is first normalised by libpng's own
 * transforms (grey 1/2/4 -> 8 bits, tRNS -> alpha), kept at 8 or 16 bits;
 * 16-bit samples keep their precision (v / 65535 · 2 − 1).  Palette
 * images are expanded here, after checking every index.
 * Colour -> grey uses the ITU-R BT.601 luma weights (0.299, 0.587, 0.114)
 * on the stored (gamma-encoded) values, as PIL's convert ("L") does.
 *
 * libpng reports errors by longjmp.  Each setjmp lives in a small helper
 * whose caller owns every allocation through a context struct, so no local
 * variable of the function holding the jmp_buf changes after setjmp and
 * nothing is leaked when libpng jumps back.
 *
 * .npy: NumPy's format (numpy/lib/format.py), versions 1.0, 2.0 and 3.0,
 * little-endian float32 ('<f4'), C order, up to 4 dimensions.
 */
#include "diffuse-private.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* Dimensions above this are refused before any allocation. */
#define MAX_PNG_SIDE 16384
#define MAX_PNG_PIXELS ((guint64) 1 << 26)

/* ------------------------------------------------------------------ */
/* libpng error plumbing                                                */

typedef struct
{
  gchar message[256];
} PngErrorSink;

static void
on_png_error (png_structp png, png_const_charp message)
{
  PngErrorSink *sink = png_get_error_ptr (png);

  /* libpng's own words for a short read */
  if (message != NULL && strcmp (message, "Read Error") == 0)
    message = "unexpected end of file (truncated?)";
  g_strlcpy (sink->message, message ? message : "unknown libpng error",
             sizeof sink->message);
  png_longjmp (png, 1);
}

static void
on_png_warning (png_structp png, png_const_charp message)
{
  /* The engine never prints; warnings (bad iCCP profiles and the like) do
   * not stop a decode. */
  (void) png;
  (void) message;
}

/* ------------------------------------------------------------------ */
/* PNG loading                                                          */

typedef struct
{
  FILE *fp;
  png_structp png;
  png_infop info;
  PngErrorSink sink;
  guint8 *pixels; /* interleaved rows as decoded */
  png_bytep *rows;
  guint32 width, height;
  gint stride;    /* samples per pixel in pixels */
  gint bit_depth; /* 8 or 16 after the transforms */
  gint channels;  /* the image's own channel count, 1..4 */
  gint n_palette; /* palette images: entries; pixels hold indices */
  guint8 palette[256][4];
  gboolean too_big;
  guint64 file_size; /* bytes in the file: bounds what it can hold */
} PngReadCtx;

/* deflate expands at most 1032:1 (zlib's technical notes): a header
 * promising more pixel bytes than that from the file's size is a lie
 * (or a truncated file), refused before the pixel buffer is allocated */
#define DEFLATE_MAX_RATIO 1032

/* Palette images keep their indices (one byte each): libpng would expand
 * an index past the palette's end to black with only a warning, while here
 * it is an error.  PLTE and tRNS become an RGBA table. */
static void
read_palette (PngReadCtx *ctx)
{
  png_colorp plte = NULL;
  png_bytep trans = NULL;
  int n = 0, n_trans = 0;

  if (!png_get_PLTE (ctx->png, ctx->info, &plte, &n) || n < 1 || n > 256)
    png_error (ctx->png, "palette image without a valid PLTE chunk");
  if (!png_get_tRNS (ctx->png, ctx->info, &trans, &n_trans, NULL))
    n_trans = 0;
  for (int i = 0; i < n; i++)
    {
      ctx->palette[i][0] = plte[i].red;
      ctx->palette[i][1] = plte[i].green;
      ctx->palette[i][2] = plte[i].blue;
      ctx->palette[i][3] = i < n_trans ? trans[i] : 255;
    }
  ctx->n_palette = n;
  ctx->channels = n_trans > 0 ? 4 : 3;
  png_set_packing (ctx->png);
}

/* Runs every libpng call that may longjmp.  Returns FALSE with
 * ctx->sink.message set (or ctx->too_big) on failure. */
static gboolean
png_read_all (PngReadCtx *ctx)
{
  png_uint_32 w, h;
  int bit_depth, color_type, interlace;
  gsize rowbytes, n_pixels;

  if (setjmp (png_jmpbuf (ctx->png)))
    return FALSE;

  png_init_io (ctx->png, ctx->fp);
  png_set_sig_bytes (ctx->png, 8);
  png_set_user_limits (ctx->png, MAX_PNG_SIDE, MAX_PNG_SIDE);
  png_read_info (ctx->png, ctx->info);
  png_get_IHDR (ctx->png, ctx->info, &w, &h, &bit_depth, &color_type,
                &interlace, NULL, NULL);
  ctx->width = w;
  ctx->height = h;
  if ((guint64) w * h > MAX_PNG_PIXELS)
    {
      ctx->too_big = TRUE;
      return FALSE;
    }

  /* the filtered rows as stored: one filter byte each */
  if ((guint64) h * (png_get_rowbytes (ctx->png, ctx->info) + 1) >
      ctx->file_size * DEFLATE_MAX_RATIO + 65536)
    png_error (ctx->png, "the header's size cannot come from a file this "
                         "small (truncated?)");
  if (color_type == PNG_COLOR_TYPE_PALETTE)
    read_palette (ctx);
  else
    png_set_expand (ctx->png); /* grey < 8 bits -> 8, tRNS -> alpha */
  if (bit_depth == 16 && G_BYTE_ORDER == G_LITTLE_ENDIAN)
    png_set_swap (ctx->png);
  png_set_interlace_handling (ctx->png);
  png_read_update_info (ctx->png, ctx->info);

  ctx->stride = png_get_channels (ctx->png, ctx->info);
  ctx->bit_depth = png_get_bit_depth (ctx->png, ctx->info);
  if (ctx->n_palette == 0)
    ctx->channels = ctx->stride;
  if (ctx->stride < 1 || ctx->stride > 4 ||
      (ctx->n_palette > 0 && ctx->stride != 1) ||
      (ctx->bit_depth != 8 && ctx->bit_depth != 16))
    png_error (ctx->png, "unexpected pixel layout after expansion");

  rowbytes = png_get_rowbytes (ctx->png, ctx->info);
  if (rowbytes != (gsize) w * ctx->stride * (ctx->bit_depth / 8))
    png_error (ctx->png, "unexpected row size after expansion");

  /* Bounded by MAX_PNG_PIXELS · 8 bytes: no overflow. */
  ctx->pixels = g_try_malloc ((gsize) rowbytes * h);
  ctx->rows = g_try_new (png_bytep, h);
  if (ctx->pixels == NULL || ctx->rows == NULL)
    png_error (ctx->png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++)
    ctx->rows[y] = ctx->pixels + (gsize) y * rowbytes;

  png_read_image (ctx->png, ctx->rows);
  n_pixels = (gsize) w * h;
  for (gsize i = 0; i < n_pixels && ctx->n_palette > 0; i++)
    if (ctx->pixels[i] >= ctx->n_palette)
      png_error (ctx->png, "palette index beyond the end of the palette");
  /* Checks the CRCs of the chunks after the image and that IEND is there,
   * so a truncated file is an error rather than a silently short image. */
  png_read_end (ctx->png, NULL);
  return TRUE;
}

/* Pixel i as RGB + alpha in [0, 1]. */
static inline void
fetch_pixel (const PngReadCtx *ctx, gsize i, float rgba[4])
{
  const gint s = ctx->stride;
  float v[4] = { 0 };

  if (ctx->n_palette > 0)
    {
      for (gint c = 0; c < 4; c++)
        rgba[c] = ctx->palette[ctx->pixels[i]][c] / 255.0f;
      return;
    }
  for (gint c = 0; c < s; c++)
    v[c] = ctx->bit_depth == 16
               ? ((const guint16 *) ctx->pixels)[i * s + c] / 65535.0f
               : ctx->pixels[i * s + c] / 255.0f;
  rgba[0] = v[0];
  rgba[1] = s >= 3 ? v[1] : v[0];
  rgba[2] = s >= 3 ? v[2] : v[0];
  rgba[3] = (s == 2 || s == 4) ? v[s - 1] : 1.0f;
}

/* Decoded pixels -> planar [channels, H, W] in [-1, 1]. */
static void
convert_to_planar (const PngReadCtx *ctx, gint channels, float *out)
{
  const gboolean src_colour = ctx->channels >= 3;
  const gboolean dst_colour = channels >= 3;
  const gboolean dst_alpha = channels == 2 || channels == 4;
  const gsize plane = (gsize) ctx->width * ctx->height;

  for (gsize i = 0; i < plane; i++)
    {
      float rgba[4];

      fetch_pixel (ctx, i, rgba);
      if (dst_colour)
        for (gint c = 0; c < 3; c++)
          out[c * plane + i] = rgba[c] * 2.0f - 1.0f;
      else
        {
          /* ITU-R BT.601 luma */
          float y = src_colour
                        ? 0.299f * rgba[0] + 0.587f * rgba[1] + 0.114f * rgba[2]
                        : rgba[0];
          out[i] = y * 2.0f - 1.0f;
        }
      if (dst_alpha)
        out[(channels - 1) * plane + i] = rgba[3] * 2.0f - 1.0f;
    }
}

/* Decodes the PNG in fp (closed here); name is used in messages. */
static float *
png_load_fp (FILE *fp, guint64 file_size, const char *path, gint channels,
             gint *out_channels, gint *out_height, gint *out_width,
             GError **error)
{
  PngReadCtx ctx = { 0 };
  guint8 sig[8];
  float *out = NULL;
  gsize n;

  ctx.fp = fp;
  ctx.file_size = file_size;
  if (channels < 0 || channels > 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: cannot load as %d channels (need 0..4)", path,
                   channels);
      goto out;
    }
  if (fread (sig, 1, sizeof sig, ctx.fp) != sizeof sig ||
      png_sig_cmp (sig, 0, sizeof sig) != 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: not a PNG file (bad signature)", path);
      goto out;
    }

  ctx.png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &ctx.sink,
                                    on_png_error, on_png_warning);
  if (ctx.png != NULL)
    ctx.info = png_create_info_struct (ctx.png);
  if (ctx.png == NULL || ctx.info == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: cannot create a PNG decoder", path);
      goto out;
    }

  if (!png_read_all (&ctx))
    {
      if (ctx.too_big)
        g_set_error (
            error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
            "%s: image of %u x %u pixels is too large (limit %" G_GUINT64_FORMAT
            " pixels)",
            path, ctx.width, ctx.height, (guint64) MAX_PNG_PIXELS);
      else
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                     "%s: cannot decode PNG: %s", path, ctx.sink.message);
      goto out;
    }

  if (channels == 0)
    channels = ctx.channels;
  n = (gsize) channels * ctx.width * ctx.height;
  out = g_try_new (float, n);
  if (out == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: out of memory for %u x %u pixels", path, ctx.width,
                   ctx.height);
      goto out;
    }
  convert_to_planar (&ctx, channels, out);
  if (out_channels)
    *out_channels = channels;
  if (out_height)
    *out_height = (gint) ctx.height;
  if (out_width)
    *out_width = (gint) ctx.width;

out:
  if (ctx.png != NULL)
    png_destroy_read_struct (&ctx.png, ctx.info ? &ctx.info : NULL, NULL);
  g_free (ctx.rows);
  g_free (ctx.pixels);
  fclose (ctx.fp);
  return out;
}

float *
diffuse_png_load (const char *path, gint channels, gint *out_channels,
                  gint *out_height, gint *out_width, GError **error)
{
  g_autofree gchar *display = NULL;
  FILE *fp;
  gint fd;
  guint64 size = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (channels < 0 || channels > 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: cannot load as %d channels (need 0..4)", path,
                   channels);
      return NULL;
    }
  /* a regular file only: a FIFO or /dev/zero would block or never end */
  fd = diffuse__open_regular (path, &size, error);
  if (fd < 0)
    return NULL;
  display = g_filename_display_name (path);
  fp = fdopen (fd, "rb");
  if (fp == NULL)
    {
      int saved = errno;
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot open: %s", display, g_strerror (saved));
      close (fd);
      return NULL;
    }
  return png_load_fp (fp, size, display, channels, out_channels, out_height,
                      out_width, error);
}

float *
diffuse__png_load_bytes (const guint8 *bytes, gsize len, gint channels,
                         gint *out_channels, gint *out_height, gint *out_width,
                         GError **error)
{
  static const guint8 empty[1];
  FILE *fp = fmemopen ((void *) (len ? bytes : empty), MAX (len, 1), "rb");

  if (fp == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "<memory>: cannot open");
      return NULL;
    }
  if (len == 0)
    fseek (fp, 1, SEEK_SET); /* an empty stream */
  return png_load_fp (fp, len, "<memory>", channels, out_channels, out_height,
                      out_width, error);
}

/* ------------------------------------------------------------------ */
/* PNG saving                                                           */

/* [-1, 1] -> 0..255, rounded to nearest and clamped (NaN is refused
 * before this, but would give 0). */
static inline guint8
to_byte (float v)
{
  float p = (v + 1.0f) * 127.5f;

  if (!(p > 0.0f))
    return 0;
  if (p >= 255.0f)
    return 255;
  return (guint8) lrintf (p);
}

typedef struct
{
  DiffuseOutput *out;
  GError *write_error; /* the output's own error, when a write failed */
  png_structp png;
  png_infop info;
  PngErrorSink sink;
  guint8 *row;
  const float *data;
  const char *const *text;
  gint channels, height, width;
} PngWriteCtx;

static void
on_png_write (png_structp png, png_bytep data, png_size_t len)
{
  PngWriteCtx *ctx = png_get_io_ptr (png);

  if (!diffuse_output_write (ctx->out, data, len, &ctx->write_error))
    png_error (png, "write failed");
}

static void
on_png_flush (png_structp png)
{
  (void) png;
}

static gboolean
png_write_all (PngWriteCtx *ctx)
{
  static const int color_types[] = { PNG_COLOR_TYPE_GRAY,
                                     PNG_COLOR_TYPE_GRAY_ALPHA,
                                     PNG_COLOR_TYPE_RGB,
                                     PNG_COLOR_TYPE_RGB_ALPHA };
  const gsize plane = (gsize) ctx->height * ctx->width;

  if (setjmp (png_jmpbuf (ctx->png)))
    return FALSE;

  png_set_write_fn (ctx->png, ctx, on_png_write, on_png_flush);
  png_set_IHDR (ctx->png, ctx->info, ctx->width, ctx->height, 8,
                color_types[ctx->channels - 1], PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (gint i = 0;
       ctx->text != NULL && ctx->text[i] != NULL && ctx->text[i + 1] != NULL;
       i += 2)
    {
      png_text t = { 0 };

      t.compression = PNG_TEXT_COMPRESSION_NONE;
      t.key = (png_charp) ctx->text[i];
      t.text = (png_charp) ctx->text[i + 1];
      t.text_length = strlen (t.text);
      png_set_text (ctx->png, ctx->info, &t, 1);
    }
  png_write_info (ctx->png, ctx->info);
  for (gint y = 0; y < ctx->height; y++)
    {
      for (gint x = 0; x < ctx->width; x++)
        for (gint c = 0; c < ctx->channels; c++)
          ctx->row[(gsize) x * ctx->channels + c] =
              to_byte (ctx->data[c * plane + (gsize) y * ctx->width + x]);
      png_write_row (ctx->png, ctx->row);
    }
  png_write_end (ctx->png, NULL);
  return TRUE;
}

/* PNG tEXt keywords: 1..79 printable Latin-1 characters, no leading,
 * trailing or double spaces (PNG spec 11.3.4.3). */
static gboolean
png_keyword_ok (const char *key)
{
  gsize n = strlen (key);

  if (n < 1 || n > 79 || key[0] == ' ' || key[n - 1] == ' ' ||
      strstr (key, "  ") != NULL)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if ((guint8) key[i] < 32 ||
        ((guint8) key[i] > 126 && (guint8) key[i] < 161))
      return FALSE;
  return TRUE;
}

gboolean
diffuse_output_write_png (DiffuseOutput *out, const float *data, gint channels,
                          gint height, gint width, const char *const *text,
                          GError **error)
{
  PngWriteCtx ctx = { 0 };
  g_autofree gchar *path = NULL;
  gboolean ok = FALSE;
  gsize n;

  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  path = g_filename_display_name (diffuse_output_get_path (out));
  if (channels < 1 || channels > 4 || height < 1 || width < 1 ||
      height > MAX_PNG_SIDE || width > MAX_PNG_SIDE)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: cannot write a PNG of %d channels, %d x %d pixels",
                   path, channels, width, height);
      return FALSE;
    }
  for (gint i = 0; text != NULL && text[i] != NULL; i += 2)
    if (!png_keyword_ok (text[i]) || text[i + 1] == NULL)
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "%s: bad PNG text keyword or missing value", path);
        return FALSE;
      }
  /* a NaN pixel has no 8-bit value: never write a silently black image */
  n = (gsize) channels * height * width;
  for (gsize i = 0; i < n; i++)
    if (!isfinite (data[i]))
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "%s: the image holds non-finite values (NaN or Inf); "
                     "not written",
                     path);
        return FALSE;
      }

  ctx.out = out;
  ctx.data = data;
  ctx.text = text;
  ctx.channels = channels;
  ctx.height = height;
  ctx.width = width;
  ctx.row = g_try_malloc ((gsize) width * channels);
  if (ctx.row == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: out of memory", path);
      return FALSE;
    }

  ctx.png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &ctx.sink,
                                     on_png_error, on_png_warning);
  if (ctx.png != NULL)
    ctx.info = png_create_info_struct (ctx.png);
  if (ctx.png == NULL || ctx.info == NULL)
    g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                 "%s: cannot create a PNG encoder", path);
  else if (!png_write_all (&ctx))
    {
      if (ctx.write_error != NULL)
        g_propagate_error (error, g_steal_pointer (&ctx.write_error));
      else
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                     "%s: cannot write PNG: %s", path, ctx.sink.message);
    }
  else
    ok = TRUE;

  if (ctx.png != NULL)
    png_destroy_write_struct (&ctx.png, ctx.info ? &ctx.info : NULL);
  g_clear_error (&ctx.write_error);
  g_free (ctx.row);
  return ok;
}

gboolean
diffuse_png_save (const char *path, const float *data, gint channels,
                  gint height, gint width, GError **error)
{
  g_autoptr (DiffuseOutput) out = NULL;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (channels < 1 || channels > 4 || height < 1 || width < 1 ||
      height > MAX_PNG_SIDE || width > MAX_PNG_SIDE)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: cannot write a PNG of %d channels, %d x %d pixels",
                   path, channels, width, height);
      return FALSE;
    }
  out = diffuse_output_new (path, error);
  return out != NULL &&
         diffuse_output_write_png (out, data, channels, height, width, NULL,
                                   error) &&
         diffuse_output_commit (out, error);
}

/* ------------------------------------------------------------------ */
/* .npy                                                                 */

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_DIMS DIFFUSE_NPY_MAX_DIMS

typedef struct
{
  const char *p, *end;
} Cursor;

static void
skip_space (Cursor *c)
{
  while (c->p < c->end && g_ascii_isspace (*c->p))
    c->p++;
}

static gboolean
accept (Cursor *c, char ch)
{
  skip_space (c);
  if (c->p < c->end && *c->p == ch)
    {
      c->p++;
      return TRUE;
    }
  return FALSE;
}

/* A Python string literal in ' or " quotes, no escapes (numpy writes none
 * in the keys and descr it produces). */
static gchar *
parse_string (Cursor *c)
{
  char quote;
  const char *start;

  skip_space (c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return NULL;
  quote = *c->p++;
  start = c->p;
  while (c->p < c->end && *c->p != quote)
    {
      if (*c->p == '\\')
        return NULL;
      c->p++;
    }
  if (c->p >= c->end)
    return NULL;
  c->p++;
  return g_strndup (start, c->p - 1 - start);
}

static gboolean
parse_word (Cursor *c, const char *word)
{
  gsize len = strlen (word);

  skip_space (c);
  if ((gsize) (c->end - c->p) >= len && memcmp (c->p, word, len) == 0)
    {
      c->p += len;
      return TRUE;
    }
  return FALSE;
}

/* "(2, 3)", "(5,)", "()"; each entry a non-negative integer < 2^62. */
static gboolean
parse_shape (Cursor *c, gint *ndim, gint64 shape[NPY_MAX_DIMS],
             const char **why)
{
  *ndim = 0;
  if (!accept (c, '('))
    {
      *why = "shape is not a tuple";
      return FALSE;
    }
  while (!accept (c, ')'))
    {
      guint64 v = 0;
      gboolean any = FALSE;

      skip_space (c);
      while (c->p < c->end && g_ascii_isdigit (*c->p))
        {
          if (v > (G_GUINT64_CONSTANT (1) << 62) / 10)
            {
              *why = "shape entry too large";
              return FALSE;
            }
          v = v * 10 + (guint64) (*c->p - '0');
          c->p++;
          any = TRUE;
        }
      if (!any)
        {
          *why = "shape entry is not a non-negative integer";
          return FALSE;
        }
      if (*ndim == NPY_MAX_DIMS)
        {
          *why = "more than " G_STRINGIFY (DIFFUSE_NPY_MAX_DIMS) " dimensions";
          return FALSE;
        }
      shape[(*ndim)++] = (gint64) v;
      if (!accept (c, ','))
        {
          if (!accept (c, ')'))
            {
              *why = "malformed shape tuple";
              return FALSE;
            }
          break;
        }
    }
  return TRUE;
}

/* Parses numpy's header dict; errors describe what is wrong. */
static gboolean
parse_npy_header (const char *text, gsize len, gint *ndim,
                  gint64 shape[NPY_MAX_DIMS], GString *why)
{
  Cursor c = { text, text + len };
  gboolean seen_descr = FALSE, seen_order = FALSE, seen_shape = FALSE;

  if (!accept (&c, '{'))
    {
      g_string_assign (why, "header is not a dict");
      return FALSE;
    }
  while (!accept (&c, '}'))
    {
      g_autofree gchar *key = parse_string (&c);

      if (key == NULL || !accept (&c, ':'))
        {
          g_string_assign (why, "malformed header dict");
          return FALSE;
        }
      if (strcmp (key, "descr") == 0)
        {
          g_autofree gchar *descr = parse_string (&c);

          if (descr == NULL)
            {
              g_string_assign (why, "descr is not a string");
              return FALSE;
            }
          if (strcmp (descr, "<f4") != 0)
            {
              g_string_printf (why,
                               "dtype '%s' is not supported (need "
                               "little-endian float32 '<f4')",
                               descr);
              return FALSE;
            }
          seen_descr = TRUE;
        }
      else if (strcmp (key, "fortran_order") == 0)
        {
          if (parse_word (&c, "True"))
            {
              g_string_assign (why, "fortran_order True is not supported "
                                    "(need C order)");
              return FALSE;
            }
          if (!parse_word (&c, "False"))
            {
              g_string_assign (why, "fortran_order is not True or False");
              return FALSE;
            }
          seen_order = TRUE;
        }
      else if (strcmp (key, "shape") == 0)
        {
          const char *reason = NULL;

          if (!parse_shape (&c, ndim, shape, &reason))
            {
              g_string_assign (why, reason);
              return FALSE;
            }
          seen_shape = TRUE;
        }
      else
        {
          g_string_printf (why, "unexpected header key '%s'", key);
          return FALSE;
        }
      if (!accept (&c, ','))
        {
          if (!accept (&c, '}'))
            {
              g_string_assign (why, "malformed header dict");
              return FALSE;
            }
          break;
        }
    }
  if (!seen_descr || !seen_order || !seen_shape)
    {
      g_string_assign (why, "header lacks descr, fortran_order or shape");
      return FALSE;
    }
  skip_space (&c);
  if (c.p != c.end)
    {
      g_string_assign (why, "trailing characters after the header dict");
      return FALSE;
    }
  return TRUE;
}

/* numpy itself refuses headers over 10000 bytes by default (format.py's
 * max_header_size); this leaves room and still bounds the read. */
#define NPY_MAX_HEADER ((gsize) 1 << 20)

/* Where an .npy comes from: a regular file (fd) or bytes in memory. */
typedef struct
{
  const char *name; /* for messages */
  gint fd;          /* -1: read from mem */
  const guint8 *mem;
  guint64 size; /* the whole file's size, known before reading */
  guint64 pos;
} NpySource;

static gboolean
npy_read (NpySource *src, void *buf, gsize n, GError **error)
{
  if (src->fd >= 0)
    {
      if (!diffuse__read_exact (src->fd, buf, n, src->name, error))
        return FALSE;
    }
  else
    memcpy (buf, src->mem + src->pos, n);
  src->pos += n;
  return TRUE;
}

/* Every size the header promises is checked against src->size before
 * anything but the header is read or allocated. */
static float *
npy_load_source (NpySource *src, gint max_ndim, gint *out_ndim,
                 gint64 *out_shape, GError **error)
{
  const char *path = src->name;
  g_autofree gchar *header = NULL;
  g_autoptr (GString) why = g_string_new (NULL);
  guint8 prefix[12];
  gsize header_len, data_start;
  guint64 n = 1;
  gint ndim = 0;
  gint64 shape[NPY_MAX_DIMS] = { 0 };
  guint8 major;
  float *out;

  if (src->size < NPY_MAGIC_LEN + 2)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: not a .npy file (bad magic)", path);
      return NULL;
    }
  if (!npy_read (src, prefix, NPY_MAGIC_LEN + 2, error))
    return NULL;
  if (memcmp (prefix, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: not a .npy file (bad magic)", path);
      return NULL;
    }
  major = prefix[NPY_MAGIC_LEN];
  if (major == 1)
    data_start = 10;
  else if (major == 2 || major == 3)
    data_start = 12;
  else
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: unsupported .npy version %u.%u", path, major,
                   prefix[NPY_MAGIC_LEN + 1]);
      return NULL;
    }
  if (src->size < data_start)
    goto truncated;
  if (!npy_read (src, prefix + 8, data_start - 8, error))
    return NULL;
  header_len = prefix[8] | ((gsize) prefix[9] << 8);
  if (major != 1)
    header_len |= ((gsize) prefix[10] << 16) | ((gsize) prefix[11] << 24);
  if (header_len > src->size - data_start)
    goto truncated;
  if (header_len > NPY_MAX_HEADER)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: .npy header of %" G_GSIZE_FORMAT " bytes is over the "
                   "limit of %" G_GSIZE_FORMAT,
                   path, header_len, NPY_MAX_HEADER);
      return NULL;
    }
  header = g_malloc (header_len + 1);
  if (!npy_read (src, header, header_len, error))
    return NULL;
  header[header_len] = '\0';
  if (memchr (header, '\0', header_len) != NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: .npy header contains a NUL byte", path);
      return NULL;
    }
  if (!parse_npy_header (header, header_len, &ndim, shape, why))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: bad .npy header: %s", path, why->str);
      return NULL;
    }
  data_start += header_len;
  if (ndim > max_ndim)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: the array has %d dimensions, at most %d are accepted "
                   "here",
                   path, ndim, max_ndim);
      return NULL;
    }

  for (gint i = 0; i < ndim; i++)
    if (!g_uint64_checked_mul (&n, n, (guint64) shape[i]) ||
        n > G_MAXSIZE / sizeof (float))
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                     "%s: .npy shape has too many elements", path);
        return NULL;
      }
  if (n * sizeof (float) != src->size - data_start)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: .npy data is %" G_GUINT64_FORMAT " bytes, the shape "
                   "needs %" G_GUINT64_FORMAT,
                   path, src->size - data_start, n * (guint64) sizeof (float));
      return NULL;
    }

  /* At least one float so that NULL always means failure. */
  out = g_try_new (float, MAX (n, 1));
  if (out == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: out of memory for %" G_GUINT64_FORMAT " floats", path,
                   n);
      return NULL;
    }
  if (!npy_read (src, out, n * sizeof (float), error))
    {
      g_free (out);
      return NULL;
    }
#if G_BYTE_ORDER == G_BIG_ENDIAN
  for (guint64 i = 0; i < n; i++)
    {
      guint32 u;
      memcpy (&u, out + i, 4);
      u = GUINT32_SWAP_LE_BE (u);
      memcpy (out + i, &u, 4);
    }
#endif
  if (out_ndim)
    *out_ndim = ndim;
  if (out_shape)
    for (gint i = 0; i < max_ndim; i++)
      out_shape[i] = i < ndim ? shape[i] : 0;
  return out;

truncated:
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
               "%s: truncated .npy header", path);
  return NULL;
}

float *
diffuse_npy_load (const char *path, gint *out_ndim, gint64 out_shape[4],
                  GError **error)
{
  return diffuse_npy_load_nd (path, 4, out_ndim, out_shape, error);
}

float *
diffuse_npy_load_nd (const char *path, gint max_ndim, gint *out_ndim,
                     gint64 *out_shape, GError **error)
{
  g_autofree gchar *display = NULL;
  NpySource src = { 0 };
  float *out;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (max_ndim >= 0 && max_ndim <= NPY_MAX_DIMS, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* a regular file only: a FIFO would block, /dev/zero never ends */
  src.fd = diffuse__open_regular (path, &src.size, error);
  if (src.fd < 0)
    return NULL;
  display = g_filename_display_name (path);
  src.name = display;
  out = npy_load_source (&src, max_ndim, out_ndim, out_shape, error);
  close (src.fd);
  return out;
}

float *
diffuse__npy_load_bytes (const guint8 *bytes, gsize len, gint *out_ndim,
                         gint64 out_shape[4], GError **error)
{
  NpySource src = { "<memory>", -1, bytes, len, 0 };

  g_return_val_if_fail (bytes != NULL || len == 0, NULL);
  return npy_load_source (&src, 4, out_ndim, out_shape, error);
}

gboolean
diffuse_output_write_npy (DiffuseOutput *out, const float *data, gint ndim,
                          const gint64 *shape, GError **error)
{
  g_autofree gchar *path = NULL;
  g_autoptr (GString) header =
      g_string_new ("{'descr': '<f4', "
                    "'fortran_order': False, 'shape': (");
  g_autofree guint8 *file = NULL;
  guint64 n = 1;
  gsize pad, total;
  guint8 prefix[10];

  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  path = g_filename_display_name (diffuse_output_get_path (out));

  if (ndim < 0 || ndim > 4 || (ndim > 0 && shape == NULL))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: cannot save a .npy of %d dimensions (need 0..4)", path,
                   ndim);
      return FALSE;
    }
  for (gint i = 0; i < ndim; i++)
    {
      if (shape[i] < 0 || !g_uint64_checked_mul (&n, n, (guint64) shape[i]) ||
          n > G_MAXSIZE / sizeof (float) / 2)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "%s: bad .npy shape entry %" G_GINT64_FORMAT, path,
                       shape[i]);
          return FALSE;
        }
      g_string_append_printf (header, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                              shape[i]);
    }
  g_string_append (header, ndim == 1 ? ",), }" : "), }");
  g_return_val_if_fail (data != NULL || n == 0, FALSE);

  /* numpy pads the header with spaces and a final newline so that the
   * data starts on a 64-byte boundary; version 1.0 (16-bit length) fits
   * every header this function writes. */
  pad = 64 - (10 + header->len + 1) % 64;
  if (pad == 64)
    pad = 0;
  for (gsize i = 0; i < pad; i++)
    g_string_append_c (header, ' ');
  g_string_append_c (header, '\n');

  memcpy (prefix, NPY_MAGIC, NPY_MAGIC_LEN);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix[8] = header->len & 0xff;
  prefix[9] = (header->len >> 8) & 0xff;

  total = sizeof prefix + header->len + n * sizeof (float);
  file = g_try_malloc (total);
  if (file == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: out of memory", path);
      return FALSE;
    }
  memcpy (file, prefix, sizeof prefix);
  memcpy (file + sizeof prefix, header->str, header->len);
  if (n > 0)
    memcpy (file + sizeof prefix + header->len, data, n * sizeof (float));
#if G_BYTE_ORDER == G_BIG_ENDIAN
  for (guint64 i = 0; i < n; i++)
    {
      guint8 *f = file + sizeof prefix + header->len + i * 4;
      guint8 t0 = f[0], t1 = f[1];
      f[0] = f[3];
      f[1] = f[2];
      f[2] = t1;
      f[3] = t0;
    }
#endif

  return diffuse_output_write (out, file, total, error);
}

gboolean
diffuse_npy_save (const char *path, const float *data, gint ndim,
                  const gint64 *shape, GError **error)
{
  g_autoptr (DiffuseOutput) out = NULL;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  out = diffuse_output_new (path, error);
  return out != NULL &&
         diffuse_output_write_npy (out, data, ndim, shape, error) &&
         diffuse_output_commit (out, error);
}
