/* What a first load learns about a model file and a second one can skip:
 * a record, in the user's cache folder, that the file was scanned in
 * full and every weight is finite (model.c's check, the one part of a
 * load that reads every byte: 0.3–0.5 s for ImageNet-64's 1.2 GB).
 *
 * Nothing else is worth keeping: binding is a header parse, and the
 * Winograd forms are made before each convolution (unet.c), so a record
 * of 72 bytes is the whole cache.
 *
 * The key is a SHA-256 over the cache format and engine version, the
 * model file's device, inode, size, modification and status-change times
 * (nanoseconds), its header (tensor names, shapes, offsets, metadata) and
 * 4 KiB of its data at every 16 MiB and at the end.  A file changed in
 * any way that changes its times (any write does; only the kernel sets
 * the status-change time) gets a new key and is scanned again.
 *
 * The record, <cache>/gimp-diffusion/<key in hex>.verified, holds a magic
 * string, the key and a SHA-256 of both.  It is trusted only when it is
 * a regular file of exactly that size and content: anything else
 * (missing, truncated, corrupted, a folder, a FIFO, a link to a device)
 * is a miss, the file is scanned, and a good record replaces it,
 * atomically (engine/files.c).  A failure to write it is not an error.
 *
 * DIFFUSE_CACHE_DIR names another folder; DIFFUSE_CACHE=off turns the
 * cache off (every load scans). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"

#define FORMAT "gimp-diffusion model-cache 1"
#define MAGIC "GDVERIF1"
#define SAMPLE_BYTES 4096
#define SAMPLE_STRIDE (16u << 20)
#define RECORD_BYTES (8 + 32 + 32)

static void
put_u64 (GChecksum *c, guint64 v)
{
  guint64 le = GUINT64_TO_LE (v);

  g_checksum_update (c, (const guchar *) &le, sizeof le);
}

gboolean
diffuse__model_cache_key (const DiffuseSafetensors *st, guint8 key[32])
{
  const struct stat *s = diffuse__safetensors_get_stat (st);
  const guint8 *bytes;
  gsize len, header, n = 32;
  guint64 hlen;
  GChecksum *c;

  if (s == NULL || !diffuse__safetensors_get_bytes (st, &bytes, &len) ||
      len < 8)
    return FALSE;
  memcpy (&hlen, bytes, 8);
  hlen = GUINT64_FROM_LE (hlen);
  header = hlen <= len - 8 ? 8 + (gsize) hlen : len;
  c = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (c, (const guchar *) FORMAT, sizeof FORMAT);
  g_checksum_update (c, (const guchar *) DIFFUSE_VERSION,
                     sizeof DIFFUSE_VERSION);
  put_u64 (c, (guint64) s->st_dev);
  put_u64 (c, (guint64) s->st_ino);
  put_u64 (c, (guint64) s->st_size);
  put_u64 (c, (guint64) s->st_mtim.tv_sec);
  put_u64 (c, (guint64) s->st_mtim.tv_nsec);
  put_u64 (c, (guint64) s->st_ctim.tv_sec);
  put_u64 (c, (guint64) s->st_ctim.tv_nsec);
  g_checksum_update (c, bytes, header);
  for (gsize off = header; off < len; off += SAMPLE_STRIDE)
    g_checksum_update (c, bytes + off, MIN (SAMPLE_BYTES, len - off));
  if (len > header)
    g_checksum_update (c, bytes + len - MIN (SAMPLE_BYTES, len - header),
                       MIN (SAMPLE_BYTES, len - header));
  g_checksum_get_digest (c, key, &n);
  g_checksum_free (c);
  return n == 32;
}

/* The cache folder, or NULL when the cache is off. */
static gchar *
cache_dir (void)
{
  const char *off = g_getenv ("DIFFUSE_CACHE");
  const char *dir = g_getenv ("DIFFUSE_CACHE_DIR");

  if (off != NULL && (strcmp (off, "off") == 0 || strcmp (off, "0") == 0))
    return NULL;
  if (dir != NULL && *dir != '\0')
    return g_strdup (dir);
  return g_build_filename (g_get_user_cache_dir (), "gimp-diffusion", NULL);
}

static gchar *
record_path (const char *dir, const guint8 key[32])
{
  gchar hex[65], *name, *path;

  for (gint i = 0; i < 32; i++)
    g_snprintf (hex + 2 * i, 3, "%02x", key[i]);
  name = g_strconcat (hex, ".verified", NULL);
  path = g_build_filename (dir, name, NULL);
  g_free (name);
  return path;
}

/* magic, key, SHA-256 of both */
static void
make_record (const guint8 key[32], guint8 rec[RECORD_BYTES])
{
  gsize n = 32;
  GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);

  memcpy (rec, MAGIC, 8);
  memcpy (rec + 8, key, 32);
  g_checksum_update (c, rec, 40);
  g_checksum_get_digest (c, rec + 40, &n);
  g_checksum_free (c);
}

gboolean
diffuse__model_cache_record_valid (const guint8 *bytes, gsize len,
                                   const guint8 key[32])
{
  guint8 want[RECORD_BYTES];

  if (bytes == NULL || len != RECORD_BYTES)
    return FALSE;
  make_record (key, want);
  return memcmp (bytes, want, RECORD_BYTES) == 0;
}

gboolean
diffuse__model_cache_has (const guint8 key[32])
{
  g_autofree gchar *dir = cache_dir ();
  g_autofree gchar *path = NULL;
  guint8 rec[RECORD_BYTES + 1];
  guint64 size = 0;
  gboolean ok;
  gint fd;

  if (dir == NULL)
    return FALSE;
  path = record_path (dir, key);
  /* regular files only (diffuse__open_regular): a FIFO would block */
  fd = diffuse__open_regular (path, &size, NULL);
  if (fd < 0)
    return FALSE;
  ok = size == RECORD_BYTES &&
       diffuse__read_exact (fd, rec, RECORD_BYTES, path, NULL) &&
       diffuse__model_cache_record_valid (rec, RECORD_BYTES, key);
  close (fd);
  return ok;
}

void
diffuse__model_cache_add (const guint8 key[32])
{
  g_autofree gchar *dir = cache_dir ();
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  guint8 rec[RECORD_BYTES];
  DiffuseOutput *out;
  struct stat s;

  if (dir == NULL)
    return;
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_debug ("model cache: cannot make %s: %s", dir, g_strerror (errno));
      return;
    }
  path = record_path (dir, key);
  make_record (key, rec);
  /* whatever is there is no good record: a link is removed (not
   * followed: the record never replaces another file), an empty folder
   * too; diffuse_output_new refuses anything else */
  if (g_lstat (path, &s) == 0 && !S_ISREG (s.st_mode))
    {
      if (S_ISDIR (s.st_mode))
        g_rmdir (path);
      else
        g_unlink (path);
    }
  out = diffuse_output_new (path, &error);
  if (out == NULL)
    {
      g_debug ("model cache: %s", error->message);
      return;
    }
  if (!diffuse_output_write (out, rec, sizeof rec, &error) ||
      !diffuse_output_commit (out, &error))
    g_debug ("model cache: %s", error->message);
  diffuse_output_free (out);
}
