/* Files: safe reads of untrusted inputs and atomic writes of outputs.
 *
 * Reading: a path is opened with O_NONBLOCK (so that a FIFO cannot block
 * the open), checked with fstat to be a regular file (a FIFO, device,
 * socket or directory is refused before any byte is read: /dev/zero has
 * no end), and only then switched back to blocking reads.  Callers read
 * at most the size fstat gave, after checking what the file's header
 * promises against it.
 *
 * Writing: DiffuseOutput writes to a temporary file in the target's own
 * folder and renames it over the target only once everything is written
 * and flushed, so a full disk, an error or a signal leaves the old file
 * as it was.  A target that exists and is not a regular file (a device,
 * FIFO, socket, directory) is refused before anything is written; a
 * symbolic link is written through (the file it points to is replaced,
 * the link stays).  Only the temporary file this code created is ever
 * unlinked.
 */
#include "diffuse-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* Symbolic links followed when resolving an output path (as Linux's
 * MAXSYMLINKS). */
#define MAX_LINKS 40

static const char *
file_kind (mode_t mode)
{
  if (S_ISDIR (mode))
    return "a directory";
  if (S_ISFIFO (mode))
    return "a FIFO (named pipe)";
  if (S_ISCHR (mode))
    return "a character device";
  if (S_ISBLK (mode))
    return "a block device";
  if (S_ISSOCK (mode))
    return "a socket";
  return "not a regular file";
}

/* ------------------------------------------------------------------ */
/* Reading                                                              */

gint
diffuse__open_regular (const char *path, guint64 *out_size, GError **error)
{
  g_autofree gchar *display = NULL;
  struct stat st;
  int fd, flags;

  g_return_val_if_fail (path != NULL, -1);
  display = g_filename_display_name (path);
  fd = g_open (path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot open: %s", display, g_strerror (saved));
      return -1;
    }
  if (fstat (fd, &st) != 0)
    {
      int saved = errno;

      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot stat: %s", display, g_strerror (saved));
      close (fd);
      return -1;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: is %s, not a regular file", display,
                   file_kind (st.st_mode));
      close (fd);
      return -1;
    }
  flags = fcntl (fd, F_GETFL);
  if (flags >= 0)
    fcntl (fd, F_SETFL, flags & ~O_NONBLOCK);
  if (out_size != NULL)
    *out_size = (guint64) st.st_size;
  return fd;
}

gboolean
diffuse__read_exact (gint fd, void *buf, gsize n, const char *path,
                     GError **error)
{
  guint8 *p = buf;

  while (n > 0)
    {
      gssize got = read (fd, p, MIN (n, (gsize) 1 << 30));

      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        {
          int saved = errno;
          g_autofree gchar *display = g_filename_display_name (path);

          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                       "%s: cannot read: %s", display,
                       got == 0 ? "unexpected end of file (did it shrink?)"
                                : g_strerror (saved));
          return FALSE;
        }
      p += got;
      n -= (gsize) got;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Writing                                                              */

struct _DiffuseOutput
{
  gchar *path;     /* as given, for messages */
  gchar *target;   /* the file that gets replaced (links resolved) */
  gchar *tmp_path; /* the temporary file this object created */
  gint fd;
  gboolean failed; /* a write failed: commit refuses */
  gboolean committed;
};

/* Follows symbolic links from path to the file they finally name (which
 * may not exist yet).  Sets *st (and *exists) for that file. */
static gchar *
resolve_target (const char *path, struct stat *st, gboolean *exists,
                GError **error)
{
  g_autofree gchar *display = g_filename_display_name (path);
  gchar *cur = g_strdup (path);

  for (gint i = 0; i <= MAX_LINKS; i++)
    {
      g_autofree gchar *link = NULL;
      g_autofree gchar *dir = NULL;

      if (g_lstat (cur, st) != 0)
        {
          int saved = errno;

          if (saved == ENOENT)
            {
              *exists = FALSE;
              return cur;
            }
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                       "%s: cannot write: %s", display, g_strerror (saved));
          g_free (cur);
          return NULL;
        }
      if (!S_ISLNK (st->st_mode))
        {
          *exists = TRUE;
          return cur;
        }
      link = g_file_read_link (cur, NULL);
      if (link == NULL)
        break;
      dir = g_path_get_dirname (cur);
      g_free (cur);
      cur = g_path_is_absolute (link) ? g_strdup (link)
                                      : g_build_filename (dir, link, NULL);
    }
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
               "%s: cannot write: too many levels of symbolic links", display);
  g_free (cur);
  return NULL;
}

DiffuseOutput *
diffuse_output_new (const char *path, GError **error)
{
  g_autofree gchar *display = NULL;
  g_autofree gchar *dir = NULL;
  g_autofree gchar *base = NULL;
  g_autofree gchar *dir_display = NULL;
  DiffuseOutput *out;
  struct stat st;
  gboolean exists = FALSE;
  gchar *target;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  display = g_filename_display_name (path);
  if (*path == '\0')
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the output file name is empty");
      return NULL;
    }
  target = resolve_target (path, &st, &exists, error);
  if (target == NULL)
    return NULL;
  if (exists && !S_ISREG (st.st_mode))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: is %s, not a regular file; refusing to replace it",
                   display, file_kind (st.st_mode));
      g_free (target);
      return NULL;
    }

  out = g_new0 (DiffuseOutput, 1);
  out->path = g_strdup (path);
  out->target = target;
  out->fd = -1;
  dir = g_path_get_dirname (target);
  base = g_path_get_basename (target);
  dir_display = g_filename_display_name (dir);
  /* hidden, beside the target, so that rename() stays in one file system */
  out->tmp_path = g_strdup_printf (
      "%s%s.%s.XXXXXX", dir,
      g_str_has_suffix (dir, G_DIR_SEPARATOR_S) ? "" : G_DIR_SEPARATOR_S, base);
  /* mode 0666 through the umask, as a plain create would give */
  out->fd = g_mkstemp_full (out->tmp_path, O_RDWR | O_CLOEXEC, 0666);
  if (out->fd < 0)
    {
      int saved = errno;

      if (saved == ENOENT || saved == ENOTDIR)
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                     "%s: cannot write: the folder %s does not exist", display,
                     dir_display);
      else
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                     "%s: cannot write in the folder %s: %s", display,
                     dir_display, g_strerror (saved));
      g_clear_pointer (&out->tmp_path, g_free);
      diffuse_output_free (out);
      return NULL;
    }
  /* replacing a file keeps its permissions */
  if (exists)
    fchmod (out->fd, st.st_mode & 07777);
  return out;
}

gboolean
diffuse_output_check (const char *path, GError **error)
{
  DiffuseOutput *out = diffuse_output_new (path, error);

  diffuse_output_free (out);
  return out != NULL;
}

const char *
diffuse_output_get_path (const DiffuseOutput *out)
{
  g_return_val_if_fail (out != NULL, NULL);
  return out->path;
}

gboolean
diffuse_output_write (DiffuseOutput *out, const void *data, gsize len,
                      GError **error)
{
  const guint8 *p = data;

  g_return_val_if_fail (out != NULL && !out->committed, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (out->failed)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: an earlier write failed", out->path);
      return FALSE;
    }
  while (len > 0)
    {
      gssize n = write (out->fd, p, MIN (len, (gsize) 1 << 30));

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int saved = n < 0 ? errno : ENOSPC;
          g_autofree gchar *display = g_filename_display_name (out->path);

          out->failed = TRUE;
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                       "%s: cannot write: %s (the file is unchanged)", display,
                       g_strerror (saved));
          return FALSE;
        }
      p += n;
      len -= (gsize) n;
    }
  return TRUE;
}

gboolean
diffuse_output_commit (DiffuseOutput *out, GError **error)
{
  g_autofree gchar *display = NULL;
  int fd;

  g_return_val_if_fail (out != NULL && !out->committed && out->fd >= 0, FALSE);
  display = g_filename_display_name (out->path);
  if (out->failed)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: an earlier write failed (the file is unchanged)",
                   display);
      return FALSE;
    }
  fd = out->fd;
  out->fd = -1;
  if (fsync (fd) != 0 && errno != EINVAL && errno != EROFS)
    {
      int saved = errno;

      close (fd);
      out->failed = TRUE;
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot write: %s (the file is unchanged)", display,
                   g_strerror (saved));
      return FALSE;
    }
  if (close (fd) != 0)
    {
      int saved = errno;

      out->failed = TRUE;
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot write: %s (the file is unchanged)", display,
                   g_strerror (saved));
      return FALSE;
    }
  if (g_rename (out->tmp_path, out->target) != 0)
    {
      int saved = errno;

      out->failed = TRUE;
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: cannot replace: %s (the file is unchanged)", display,
                   g_strerror (saved));
      return FALSE;
    }
  out->committed = TRUE;
  return TRUE;
}

void
diffuse_output_free (DiffuseOutput *out)
{
  if (out == NULL)
    return;
  if (out->fd >= 0)
    close (out->fd);
  /* the temporary file is ours: remove it unless it became the target */
  if (out->tmp_path != NULL && !out->committed)
    g_unlink (out->tmp_path);
  g_free (out->tmp_path);
  g_free (out->target);
  g_free (out->path);
  g_free (out);
}
