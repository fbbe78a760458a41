/* Output files are atomic and never replace what is not a regular file;
 * inputs must be regular files (no hang on a FIFO, no endless read of
 * /dev/zero). */
#include "diffuse-private.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

static gchar *tmp_dir;

static gchar *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static gchar *
list_dir_sorted (void)
{
  g_autoptr (GDir) d = g_dir_open (tmp_dir, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *n;

  while ((n = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_strdup (n));
  g_ptr_array_sort (names, compare_strings);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (gchar **) names->pdata);
}

static void
clean_dir (void)
{
  g_autoptr (GDir) d = g_dir_open (tmp_dir, 0, NULL);
  const char *n;

  while ((n = g_dir_read_name (d)) != NULL)
    {
      g_autofree gchar *p = tmp_path (n);

      if (g_rmdir (p) != 0)
        g_unlink (p);
    }
}

static void
write_text (const char *path, const char *text)
{
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
}

static gchar *
read_text (const char *path)
{
  gchar *text = NULL;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  return text;
}

static const float pixels[4 * 4] = { -1,     -0.5f, 0,      0.5f,  1, 0.25f,
                                     -0.25f, 0.75f, -1,     -0.5f, 0, 0.5f,
                                     1,      0.25f, -0.25f, 0.75f };

/* PNG and .npy saves: a FIFO, a directory or a device as the target is
 * refused before anything is written and stays what it was. */
static void
test_output_refuses_non_regular (void)
{
  g_autofree gchar *fifo = tmp_path ("fifo.png");
  g_autofree gchar *dir = tmp_path ("dir.png");
  const char *targets[] = { fifo, dir, "/dev/null", NULL };
  const gint64 shape[1] = { 16 };
  struct stat st;

  clean_dir ();
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  for (const char **t = targets; *t != NULL; t++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (diffuse_png_save (*t, pixels, 1, 4, 4, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
      g_assert_nonnull (strstr (error->message, "not a regular file"));
      g_test_message ("%s", error->message);
      g_clear_error (&error);
      g_assert_false (diffuse_npy_save (*t, pixels, 1, shape, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
      g_clear_error (&error);
      g_assert_null (diffuse_output_new (*t, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
    }
  g_assert_cmpint (lstat (fifo, &st), ==, 0);
  g_assert_true (S_ISFIFO (st.st_mode));
  g_assert_cmpint (lstat (dir, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (lstat ("/dev/null", &st), ==, 0);
  g_assert_true (S_ISCHR (st.st_mode));
  {
    g_autofree gchar *names = list_dir_sorted ();

    g_assert_cmpstr (names, ==, "dir.png fifo.png"); /* no temporary left */
  }
}

/* A symbolic link is written through: the file it names is replaced, the
 * link stays a link; a chain of links too; a loop is an error. */
static void
test_output_symlink (void)
{
  g_autofree gchar *real = tmp_path ("real.npy");
  g_autofree gchar *link = tmp_path ("link.npy");
  g_autofree gchar *link2 = tmp_path ("link2.npy");
  g_autofree gchar *loop = tmp_path ("loop.npy");
  g_autoptr (GError) error = NULL;
  g_autofree gchar *target = NULL;
  g_autofree float *back = NULL;
  const gint64 shape[1] = { 16 };
  gint ndim;
  gint64 got[4];
  struct stat st;

  clean_dir ();
  write_text (real, "old");
  g_assert_cmpint (symlink ("real.npy", link), ==, 0);
  g_assert_cmpint (symlink (link, link2), ==, 0);
  g_assert_true (diffuse_npy_save (link2, pixels, 1, shape, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lstat (link, &st), ==, 0);
  g_assert_true (S_ISLNK (st.st_mode));
  g_assert_cmpint (lstat (link2, &st), ==, 0);
  g_assert_true (S_ISLNK (st.st_mode));
  target = g_file_read_link (link, NULL);
  g_assert_cmpstr (target, ==, "real.npy");
  back = diffuse_npy_load (real, &ndim, got, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 1);
  g_assert_cmpfloat (back[15], ==, pixels[15]);

  g_assert_cmpint (symlink ("loop.npy", loop), ==, 0);
  g_assert_false (diffuse_npy_save (loop, pixels, 1, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_test_message ("%s", error->message);
  {
    g_autofree gchar *names = list_dir_sorted ();

    g_assert_cmpstr (names, ==, "link.npy link2.npy loop.npy real.npy");
  }
}

/* An output that is not committed leaves the old file as it was; a
 * replaced file keeps its permissions. */
static void
test_output_atomic (void)
{
  g_autofree gchar *path = tmp_path ("a.png");
  g_autoptr (GError) error = NULL;
  g_autofree gchar *text = NULL;
  DiffuseOutput *out;
  struct stat st;

  clean_dir ();
  write_text (path, "old image");
  g_assert_cmpint (chmod (path, 0640), ==, 0);
  out = diffuse_output_new (path, &error);
  g_assert_no_error (error);
  g_assert_true (diffuse_output_write_png (out, pixels, 1, 4, 4, NULL, &error));
  g_assert_no_error (error);
  text = read_text (path);
  g_assert_cmpstr (text, ==, "old image"); /* not yet replaced */
  diffuse_output_free (out);               /* no commit */
  g_clear_pointer (&text, g_free);
  text = read_text (path);
  g_assert_cmpstr (text, ==, "old image");
  {
    g_autofree gchar *names = list_dir_sorted ();

    g_assert_cmpstr (names, ==, "a.png");
  }

  g_assert_true (diffuse_png_save (path, pixels, 1, 4, 4, &error));
  g_assert_no_error (error);
  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0640);
  {
    g_autofree gchar *names = list_dir_sorted ();

    g_assert_cmpstr (names, ==, "a.png");
  }
}

/* A write that fails half way (here the file size limit, as a full disk
 * would) leaves the old file whole and no temporary file behind. */
static void
test_output_full_disk (void)
{
  g_autofree gchar *path = tmp_path ("big.png");
  g_autofree gchar *npy = tmp_path ("big.npy");

  clean_dir ();
  write_text (path, "old image");
  write_text (npy, "old array");
  if (g_test_subprocess ())
    {
      struct rlimit lim = { 4096, 4096 };
      const gint side = 256;
      g_autofree float *noise = g_new (float, 3 * side * side);
      g_autoptr (GError) error = NULL;
      const gint64 shape[1] = { 3 * side * side };

      signal (SIGXFSZ, SIG_IGN);
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &lim), ==, 0);
      diffuse_rng_normal (1, 0, 0, noise, 3 * side * side);
      for (gint i = 0; i < 3 * side * side; i++)
        noise[i] = fmaxf (-1.0f, fminf (1.0f, noise[i]));
      g_assert_false (diffuse_png_save (path, noise, 3, side, side, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
      g_printerr ("%s\n", error->message);
      g_clear_error (&error);
      g_assert_false (diffuse_npy_save (npy, noise, 1, shape, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
      g_printerr ("%s\n", error->message);
      return;
    }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, 0);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*cannot write*File too large*");
  {
    g_autofree gchar *text = read_text (path);
    g_autofree gchar *text2 = read_text (npy);
    g_autofree gchar *names = list_dir_sorted ();

    g_assert_cmpstr (text, ==, "old image");
    g_assert_cmpstr (text2, ==, "old array");
    g_assert_cmpstr (names, ==, "big.npy big.png");
  }
}

/* A missing folder is named, before anything is written. */
static void
test_output_missing_folder (void)
{
  g_autofree gchar *path = tmp_path ("no/such/x.png");
  g_autoptr (GError) error = NULL;

  g_assert_false (diffuse_output_check (path, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "does not exist"));
  g_assert_nonnull (strstr (error->message, "no/such"));
}

/* Non-finite pixels are refused, never a silently black PNG. */
static void
test_output_png_nan (void)
{
  g_autofree gchar *path = tmp_path ("nan.png");
  g_autoptr (GError) error = NULL;
  float px[4] = { 0, NAN, 0, 0 };

  clean_dir ();
  g_assert_false (diffuse_png_save (path, px, 1, 2, 2, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "non-finite"));
  g_clear_error (&error);
  px[1] = INFINITY;
  g_assert_false (diffuse_png_save (path, px, 1, 2, 2, &error));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* PNG text chunks (the CLI's seed) are written. */
static void
test_output_png_text (void)
{
  g_autofree gchar *path = tmp_path ("t.png");
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseOutput) out = NULL;
  g_autofree gchar *bytes = NULL;
  const char *text[] = { "Seed", "1234567890123", NULL };
  const char *bad[] = { " Seed", "1", NULL };
  gsize len;

  out = diffuse_output_new (path, &error);
  g_assert_nonnull (out);
  g_assert_false (diffuse_output_write_png (out, pixels, 1, 4, 4, bad, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_true (diffuse_output_write_png (out, pixels, 1, 4, 4, text, &error));
  g_assert_true (diffuse_output_commit (out, &error));
  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  g_assert_nonnull (memmem (bytes, len,
                            "tEXtSeed\0"
                            "1234567890123",
                            22));
}

/* Inputs: a FIFO is refused at once (no writer: a blocking open would
 * wait forever), /dev/zero and /dev/urandom are refused before a byte is
 * read, a directory is named as such. */
static void
test_input_not_regular (void)
{
  g_autofree gchar *fifo = tmp_path ("in.npy");

  clean_dir ();
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  if (g_test_subprocess ())
    {
      const char *inputs[] = { fifo, "/dev/zero", "/dev/urandom", "/", NULL };

      for (const char **p = inputs; *p != NULL; p++)
        {
          g_autoptr (GError) error = NULL;
          gint c, h, w, ndim;
          gint64 shape[4];

          g_assert_null (diffuse_npy_load (*p, &ndim, shape, &error));
          g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
          g_assert_nonnull (strstr (error->message, "not a regular file"));
          g_printerr ("%s\n", error->message);
          g_clear_error (&error);
          g_assert_null (diffuse_png_load (*p, 0, &c, &h, &w, &error));
          g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
          g_clear_error (&error);
          g_assert_null (diffuse_model_new_from_file (*p, &error));
          g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
          g_assert_nonnull (strstr (error->message, "not a regular file"));
          g_printerr ("%s\n", error->message);
        }
      return;
    }
  /* before the fix this blocked forever (or read /dev/zero without end) */
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, 0);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr (
      "*in.npy: is a FIFO (named pipe), not a regular file*"
      "/dev/zero: is a character device, not a regular file*"
      "/: is a directory, not a regular file*");
}

/* An .npy whose header promises more (or less) data than the file holds
 * is refused before the data is read or allocated. */
static void
test_input_npy_size (void)
{
  static const char header[] = "{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (1000000000, 1000), }";
  g_autofree gchar *path = tmp_path ("promise.npy");
  g_autoptr (GString) file = g_string_new_len ("\x93NUMPY\x01\x00", 8);
  g_autoptr (GError) error = NULL;

  clean_dir ();
  g_string_append_c (file, (char) (sizeof header - 1 + 1));
  g_string_append_c (file, 0);
  g_string_append (file, header);
  g_string_append_c (file, '\n');
  g_string_append_len (file, "\0\0\0\0", 4);
  g_assert_true (g_file_set_contents (path, file->str, file->len, NULL));
  g_assert_null (diffuse_npy_load (path, NULL, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "data is 4 bytes, the shape needs "
                                            "4000000000000"));
}

/* A PNG header promising more pixels than its file can hold (deflate
 * expands at most 1032:1) is refused before the pixel buffer is made. */
static void
test_input_png_promise (void)
{
  g_autofree gchar *path =
      g_build_filename (g_getenv ("DIFFUSE_SOURCE_ROOT"), "tests", "fuzz",
                        "png", "regress", "huge-promise.png", NULL);
  g_autoptr (GError) error = NULL;
  gint c, h, w;

  g_assert_null (diffuse_png_load (path, 0, &c, &h, &w, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_assert_nonnull (
      strstr (error->message, "cannot come from a file this small"));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  /* the subprocesses of g_test_trap_subprocess share the parent's folder */
  tmp_dir = g_strdup (g_getenv ("DIFFUSE_TEST_FILES_DIR"));
  if (tmp_dir == NULL)
    {
      tmp_dir = g_dir_make_tmp ("diffuse-files-XXXXXX", NULL);
      g_assert_nonnull (tmp_dir);
      g_setenv ("DIFFUSE_TEST_FILES_DIR", tmp_dir, TRUE);
    }
  g_test_add_func ("/files/output/refuses-non-regular",
                   test_output_refuses_non_regular);
  g_test_add_func ("/files/output/symlink", test_output_symlink);
  g_test_add_func ("/files/output/atomic", test_output_atomic);
  g_test_add_func ("/files/output/full-disk", test_output_full_disk);
  g_test_add_func ("/files/output/missing-folder", test_output_missing_folder);
  g_test_add_func ("/files/output/png-nan", test_output_png_nan);
  g_test_add_func ("/files/output/png-text", test_output_png_text);
  g_test_add_func ("/files/input/not-regular", test_input_not_regular);
  g_test_add_func ("/files/input/npy-size", test_input_npy_size);
  g_test_add_func ("/files/input/png-promise", test_input_png_promise);
  status = g_test_run ();
  if (!g_test_subprocess ())
    {
      clean_dir ();
      g_rmdir (tmp_dir);
    }
  g_free (tmp_dir);
  return status;
}
