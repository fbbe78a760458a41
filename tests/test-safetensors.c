/* The safetensors parser on valid, truncated and hostile files. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <unistd.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"
#include "testutil-safetensors.h"

/* Opens a private copy of exactly len bytes, so that ASan sees any read
 * past the end. */
static DiffuseSafetensors *
open_copy (const guint8 *bytes, gsize len, GError **error)
{
  guint8 *copy = g_memdup2 (bytes, len);
  DiffuseSafetensors *st = diffuse__safetensors_open_bytes (copy, len, error);

  /* st keeps pointers into the bytes: tests that succeed get the copy
   * through open_gbytes instead */
  if (st != NULL)
    {
      diffuse__safetensors_free (st);
      st = diffuse__safetensors_open_bytes (bytes, len, error);
    }
  g_free (copy);
  return st;
}

/* Expect a FORMAT error whose message contains each of the NULL
 * terminated substrings. */
static void
expect_format_error (GBytes *file, ...)
{
  g_autoptr (GError) error = NULL;
  gsize len;
  const guint8 *p = g_bytes_get_data (file, &len);
  DiffuseSafetensors *st = open_copy (p, len, &error);
  const char *want;
  va_list args;

  g_assert_null (st);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_test_message ("error: %s", error->message);
  g_assert_true (g_str_has_prefix (error->message, "<memory>: "));
  va_start (args, file);
  while ((want = va_arg (args, const char *)) != NULL)
    if (strstr (error->message, want) == NULL)
      g_error ("message \"%s\" lacks \"%s\"", error->message, want);
  va_end (args);
}

static void
expect_header_error (const char *header, gsize data_len, const char *want)
{
  g_autofree guint8 *data = g_malloc0 (data_len + 1);
  g_autoptr (GBytes) file = test_st_bytes_from_header (header, data, data_len);

  expect_format_error (file, want, NULL);
}

static TestSt *
small_builder (void)
{
  TestSt *b = test_st_new ();
  const gint64 s_a[2] = { 2, 3 }, s_b[1] = { 4 };
  const float a[6] = { 1, -2, 3.5f, 0, 1e-3f, -1e6f };
  const guint16 b_half[4] = { 0x3c00, 0xc000, 0x3555, 0x0001 };

  test_st_set_metadata (b, "format", "pt");
  test_st_set_metadata (b, "note", "quote \" and \\ survive");
  test_st_add_f32 (b, "a", 2, s_a, a);
  test_st_add_raw (b, "b.half", "F16", 1, s_b, b_half, sizeof b_half);
  return b;
}

static void
test_valid (void)
{
  g_autoptr (TestSt) b = small_builder ();
  g_autoptr (GBytes) file = test_st_serialize (b);
  g_autoptr (GError) error = NULL;
  gsize len;
  const guint8 *p = g_bytes_get_data (file, &len);
  DiffuseSafetensors *st = diffuse__safetensors_open_bytes (p, len, &error);
  const DiffuseTensorInfo *t;

  g_assert_no_error (error);
  g_assert_nonnull (st);
  g_assert_cmpuint (diffuse__safetensors_get_n_tensors (st), ==, 2);
  g_assert_cmpstr (diffuse__safetensors_get_metadata (st, "format"), ==, "pt");
  g_assert_cmpstr (diffuse__safetensors_get_metadata (st, "note"), ==,
                   "quote \" and \\ survive");
  g_assert_null (diffuse__safetensors_get_metadata (st, "absent"));
  g_assert_null (diffuse__safetensors_get (st, "absent"));

  t = diffuse__safetensors_get (st, "a");
  g_assert_nonnull (t);
  g_assert_true (t == diffuse__safetensors_get_nth (st, 0));
  g_assert_cmpint (t->dtype, ==, DIFFUSE__DTYPE_F32);
  g_assert_cmpint (t->ndim, ==, 2);
  g_assert_cmpint (t->shape[0], ==, 2);
  g_assert_cmpint (t->shape[1], ==, 3);
  g_assert_cmpint (t->n_elements, ==, 6);
  /* aligned F32 is used in place */
  g_assert_true ((const guint8 *) t->data == t->raw);
  g_assert_true (t->raw >= p && t->raw + 24 <= p + len);
  g_assert_cmpfloat (t->data[2], ==, 3.5f);
  g_assert_cmpfloat (t->data[5], ==, -1e6f);

  t = diffuse__safetensors_get_nth (st, 1);
  g_assert_cmpstr (t->name, ==, "b.half");
  g_assert_cmpint (t->dtype, ==, DIFFUSE__DTYPE_F16);
  g_assert_cmpfloat (t->data[0], ==, 1.0f);
  g_assert_cmpfloat (t->data[1], ==, -2.0f);
  g_assert_cmpfloat (t->data[2], ==, 0.333251953125f); /* 0x3555 = 1365/4096 */
  g_assert_cmpfloat (t->data[3], ==,
                     ldexpf (1.0f, -24)); /* smallest subnormal */
  diffuse__safetensors_free (st);
  diffuse__safetensors_free (NULL);
}

static void
test_from_file (void)
{
  g_autoptr (TestSt) b = small_builder ();
  g_autofree gchar *path = test_st_write_temp (b);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *missing = g_strconcat (path, ".missing", NULL);
  DiffuseSafetensors *st = diffuse__safetensors_open (path, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (diffuse__safetensors_get_n_tensors (st), ==, 2);
  g_assert_cmpfloat (diffuse__safetensors_get (st, "a")->data[1], ==, -2.0f);
  diffuse__safetensors_free (st);

  st = diffuse__safetensors_open (missing, &error);
  g_assert_null (st);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, ".missing"));
  g_clear_error (&error);

  /* a truncated file names the file */
  g_assert_true (truncate (path, 20) == 0);
  st = diffuse__safetensors_open (path, &error);
  g_assert_null (st);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);

  /* an empty file */
  g_assert_true (truncate (path, 0) == 0);
  st = diffuse__safetensors_open (path, &error);
  g_assert_null (st);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_unlink (path);
}

static void
test_truncated (void)
{
  g_autoptr (TestSt) b = small_builder ();
  g_autoptr (GBytes) file = test_st_serialize (b);
  gsize len, cut;
  const guint8 *p = g_bytes_get_data (file, &len);

  for (cut = 0; cut < len; cut++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSafetensors *st = open_copy (p, cut, &error);

      if (st != NULL)
        g_error ("a file cut to %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                 " bytes opened",
                 cut, len);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
    }
  /* ...and one byte too many is a hole at the end */
  {
    g_autofree guint8 *longer = g_malloc0 (len + 1);
    g_autoptr (GBytes) f = NULL;

    memcpy (longer, p, len);
    f = g_bytes_new (longer, len + 1);
    expect_format_error (f, "1 bytes at the end", NULL);
  }
}

static GBytes *
with_header_length (guint64 n, gsize file_len)
{
  guint8 *buf = g_malloc0 (file_len);
  gint i;

  for (i = 0; i < 8; i++)
    buf[i] = (guint8) (n >> (8 * i));
  memset (buf + 8, ' ', file_len - 8);
  buf[8] = '{';
  buf[file_len - 1] = '}';
  return g_bytes_new_take (buf, file_len);
}

static void
test_header_length (void)
{
  g_autoptr (GBytes) zero = with_header_length (0, 16);
  g_autoptr (GBytes) huge = with_header_length (G_MAXUINT64, 16);
  g_autoptr (GBytes) big =
      with_header_length (G_GUINT64_CONSTANT (1) << 63, 16);
  g_autoptr (GBytes) one_more = with_header_length (9, 16);
  g_autoptr (GBytes) exact = with_header_length (8, 16);
  g_autoptr (GBytes) short_file = g_bytes_new ("\x02\0\0\0\0\0\0", 7);
  g_autoptr (GError) error = NULL;
  DiffuseSafetensors *st;

  expect_format_error (zero, "header length is zero", NULL);
  expect_format_error (huge, "header length 18446744073709551615 is larger",
                       NULL);
  expect_format_error (big, "is larger than the 8 bytes", NULL);
  expect_format_error (one_more, "header length 9 is larger", NULL);
  expect_format_error (short_file, "too short", NULL);
  /* "{      }" with no tensors is a valid empty file */
  st = diffuse__safetensors_open_bytes (g_bytes_get_data (exact, NULL), 16,
                                        &error);
  g_assert_no_error (error);
  g_assert_cmpuint (diffuse__safetensors_get_n_tensors (st), ==, 0);
  diffuse__safetensors_free (st);
}

static void
test_header_json (void)
{
  g_autofree gchar *deep = NULL;
  GString *s = g_string_new ("{\"a\":");
  gint i;

  expect_header_error ("not json", 0, "not valid JSON");
  expect_header_error ("{\"a\":", 0, "not valid JSON");
  expect_header_error ("[1, 2]", 0, "not a JSON object");
  expect_header_error ("42", 0, "not a JSON object");
  expect_header_error ("{\"t\": [1, 2]}", 0,
                       "entry of tensor 't' is not a JSON object");
  expect_header_error ("{\"t\": \"F32\"}", 0,
                       "entry of tensor 't' is not a JSON object");
  expect_header_error (
      "{\"\": {\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
      "empty tensor name");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],"
      "\"extra\":1}}",
      4, "unexpected field \"extra\"");
  expect_header_error ("{\"a\":1,\"b\xff\":2}", 0, "not valid UTF-8");
  /* an escaped NUL in a name (json-glib would cut "t\u0000x" to "t") or a
   * value; an escaped backslash before u0000 is an ordinary string */
  expect_header_error ("{\"t\\u0000x\": {\"dtype\":\"F32\",\"shape\":[1],"
                       "\"data_offsets\":[0,4]}}",
                       4, "escaped NUL");
  expect_header_error ("{\"__metadata__\": {\"k\": \"v\\u0000\"}}", 0,
                       "escaped NUL");
  expect_header_error ("{\"__metadata__\": {\"k\": \"v\\\\u0000\"}, \"t\": 1}",
                       0, "entry of tensor 't' is not a JSON object");
  {
    /* a NUL inside the header (json-glib would cut the name there) */
    static const char header[] = "{\"t\0x\": {\"dtype\":\"F32\",\"shape\":[1],"
                                 "\"data_offsets\":[0,4]}}";
    g_autofree guint8 *buf = g_malloc0 (8 + sizeof header - 1 + 4);
    g_autoptr (GBytes) f = NULL;

    buf[0] = sizeof header - 1;
    memcpy (buf + 8, header, sizeof header - 1);
    f = g_bytes_new (buf, 8 + sizeof header - 1 + 4);
    expect_format_error (f, "NUL byte", NULL);
  }
  /* deep nesting must not reach json-glib's recursion */
  for (i = 0; i < 100000; i++)
    g_string_append_c (s, '[');
  deep = g_string_free (s, FALSE);
  expect_header_error (deep, 0, "header is nested too deeply");
  /* json-glib's scanner takes single quotes and comments, which could
   * hide a quote (and the brackets after it) from the depth count */
  expect_header_error ("{'a': 1}", 0, "header is not plain JSON");
  expect_header_error ("{\"a\": '\"', \"b\": [[1]]}", 0, "not plain JSON");
  expect_header_error ("{/* \" */ \"b\": [[1]]}", 0, "not plain JSON");
  expect_header_error ("{# \"\n \"b\": 1}", 0, "not plain JSON");
  /* brackets inside strings do not count */
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (GBytes) f =
        test_st_bytes_from_header ("{\"__metadata__\":{\"x\":\"[[[[[[[[[[[[[[[["
                                   "[[[[[[[[[[[[[[[[\\\"[[[\"}}",
                                   NULL, 0);
    DiffuseSafetensors *st = diffuse__safetensors_open_bytes (
        g_bytes_get_data (f, NULL), g_bytes_get_size (f), &error);

    g_assert_no_error (error);
    g_assert_cmpstr (diffuse__safetensors_get_metadata (st, "x"), ==,
                     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[[");
    diffuse__safetensors_free (st);
  }
}

static void
test_dtype (void)
{
  expect_header_error (
      "{\"t\": {\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "tensor 't': unknown dtype \"F99\"");
  expect_header_error (
      "{\"t\": {\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
      "dtype I64 is not supported");
  expect_header_error (
      "{\"t\": {\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "unknown dtype");
  expect_header_error (
      "{\"t\": {\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "\"dtype\" is missing or not a string");
  expect_header_error ("{\"t\": {\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                       "\"dtype\" is missing");
}

static void
test_shape (void)
{
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
      "shape entry 0 is not a non-negative integer");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
      "shape entry 0");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
      8, "shape entry 0");
  expect_header_error ("{\"t\": {\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],"
                       "\"data_offsets\":[0,4]}}",
                       4, "has 5 dimensions");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
      "\"shape\" is missing or not an array");
  expect_header_error ("{\"t\": {\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
                       "\"shape\" is missing");
  /* products that wrap 64 bits, and ones whose byte count would */
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,1,0],"
      "\"data_offsets\":[0,0]}}",
      0, "element count overflows");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
      "\"data_offsets\":[0,0]}}",
      0, "element count overflows");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F16\",\"shape\":[65536,65536,65536,65536],"
      "\"data_offsets\":[0,0]}}",
      0, "element count overflows");
  /* beyond 64 bits json-glib wraps; the result is still rejected */
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
      "\"data_offsets\":[0,4]}}",
      4, "tensor 't'");
}

static void
test_offsets (void)
{
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
      "data ends at byte 8 of the data region, which holds only 4");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
      "data_offsets [8, 4] are reversed");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
      "span 4 bytes, but F32 shape needs 8");
  expect_header_error (
      "{\"t\": {\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
      "span 8 bytes, but BF16 shape needs 6");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
      "not an array of two non-negative integers");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
      "data_offsets");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
      "data_offsets");
  expect_header_error ("{\"t\": {\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                       "data_offsets");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[18446744073709551612,18446744073709551616]}}",
      4, "tensor 't'");
  /* the tensors must tile the data region */
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
      "tensor 't': data starts at byte 4, expected 0");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"u\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
      8, "data starts at byte 4, expected 8");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
      "8 bytes at the end of the data region belong to no tensor");
}

static void
test_duplicates (void)
{
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
      8, "header has the key 't' twice");
  expect_header_error (
      "{\"t\": {\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}",
      4, "key 'dtype' twice");
  expect_header_error ("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
                       "key 'k' twice");
  expect_header_error ("{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                       "key '__metadata__' twice");
}

static void
test_metadata (void)
{
  expect_header_error ("{\"__metadata__\":{\"k\":1}}", 0,
                       "__metadata__ value of 'k' is not a string");
  expect_header_error ("{\"__metadata__\":{\"k\":null}}", 0,
                       "value of 'k' is not a string");
  expect_header_error ("{\"__metadata__\":{\"k\":[\"a\"]}}", 0, "not a string");
  expect_header_error ("{\"__metadata__\":\"x\"}", 0,
                       "__metadata__ is not a JSON object");
  expect_header_error ("{\"__metadata__\":[]}", 0,
                       "__metadata__ is not a JSON object");
}

/* binary16 by its definition: (-1)^s · 2^(e-15) · (1 + m/1024), or
 * 2^-14 · m/1024 when e = 0. */
static double
half_reference (guint16 h)
{
  gint s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;

  if (e == 0x1f)
    v = m == 0 ? INFINITY : NAN;
  else if (e == 0)
    v = ldexp (m / 1024.0, -14);
  else
    v = ldexp (1.0 + m / 1024.0, e - 15);
  return s ? -v : v;
}

/* bfloat16: 8 exponent bits (bias 127), 7 mantissa bits. */
static double
bf16_reference (guint16 h)
{
  gint s = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
  double v;

  if (e == 0xff)
    v = m == 0 ? INFINITY : NAN;
  else if (e == 0)
    v = ldexp (m / 128.0, -126);
  else
    v = ldexp (1.0 + m / 128.0, e - 127);
  return s ? -v : v;
}

static void
check_all_halves (const char *dtype, double (*reference) (guint16))
{
  g_autofree guint8 *raw = g_malloc (65536 * 2);
  g_autoptr (TestSt) b = test_st_new ();
  g_autoptr (GBytes) file = NULL;
  g_autoptr (GError) error = NULL;
  const gint64 shape[2] = { 256, 256 };
  DiffuseSafetensors *st;
  const DiffuseTensorInfo *t;
  guint i;

  for (i = 0; i < 65536; i++)
    {
      raw[2 * i] = (guint8) i; /* little-endian */
      raw[2 * i + 1] = (guint8) (i >> 8);
    }
  test_st_add_raw (b, "all", dtype, 2, shape, raw, 65536 * 2);
  file = test_st_serialize (b);
  st = diffuse__safetensors_open_bytes (g_bytes_get_data (file, NULL),
                                        g_bytes_get_size (file), &error);
  g_assert_no_error (error);
  t = diffuse__safetensors_get (st, "all");
  g_assert_cmpint (t->n_elements, ==, 65536);
  g_assert_true ((uintptr_t) t->data % 4 == 0);
  for (i = 0; i < 65536; i++)
    {
      double want = reference ((guint16) i);
      float got = t->data[i];

      if (isnan (want))
        g_assert_true (isnan (got));
      else if ((double) got != want || !signbit (got) != !signbit (want))
        g_error ("%s 0x%04x: got %.9g, want %.9g", dtype, i, got, want);
    }
  diffuse__safetensors_free (st);
}

static void
test_f16 (void)
{
  check_all_halves ("F16", half_reference);
}

static void
test_bf16 (void)
{
  check_all_halves ("BF16", bf16_reference);
}

/* Resident pages of this process (/proc/self/statm), or −1 */
static gint64
resident_pages (void)
{
  g_autofree gchar *statm = NULL;
  gint64 size, resident;

  if (!g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL) ||
      sscanf (statm, "%" G_GINT64_FORMAT " %" G_GINT64_FORMAT, &size,
              &resident) != 2)
    return -1;
  return resident;
}

/* The sum of v[i] · (i % 7) over n floats: reads every page */
static double
weighted_sum (const float *v, gint64 n)
{
  double s = 0;

  for (gint64 i = 0; i < n; i++)
    s += (double) v[i] * (double) (i % 7);
  return s;
}

/* diffuse__safetensors_release drops the mapped file's pages from the
 * process and nothing else: the data reads the same afterwards, and
 * converted tensors, the caller's bytes and ranges outside the mapping
 * are never touched. */
static void
test_release (void)
{
  const gint64 n = 4 << 20; /* 16 MiB of F32 */
  const gint64 shape[1] = { n }, hshape[1] = { 1000 };
  g_autofree float *v = g_new (float, n);
  g_autofree guint8 *half = g_malloc (2000);
  g_autoptr (TestSt) b = test_st_new ();
  g_autofree gchar *path = NULL;
  g_autoptr (GBytes) file = NULL;
  g_autoptr (GError) error = NULL;
  const DiffuseTensorInfo *t, *h;
  DiffuseSafetensors *st, *mem;
  double want, want_h;
  gint64 before, after, page = sysconf (_SC_PAGESIZE);

  for (gint64 i = 0; i < n; i++)
    v[i] = (float) (i % 1000) - 499.5f;
  for (gint i = 0; i < 1000; i++)
    {
      half[2 * i] = 0;
      half[2 * i + 1] = (guint8) (0x3c + (i % 3)); /* F16 1, 2, 4 */
    }
  test_st_add_f32 (b, "big", 1, shape, v);
  test_st_add_raw (b, "half", "F16", 1, hshape, half, 2000);
  path = test_st_write_temp (b);
  st = diffuse__safetensors_open (path, &error);
  g_assert_no_error (error);
  t = diffuse__safetensors_get (st, "big");
  h = diffuse__safetensors_get (st, "half");
  want = weighted_sum (v, n);
  want_h = weighted_sum (h->data, 1000);
  g_assert_cmpfloat (weighted_sum (t->data, n), ==, want);

  before = resident_pages ();
  diffuse__safetensors_release (st, t->data, n * sizeof (float));
  after = resident_pages ();
  if (before > 0 && after > 0)
    g_assert_cmpint (before - after, >=, (n * 4 / page) * 3 / 4);
  /* read again, from the page cache */
  g_assert_cmpfloat (weighted_sum (t->data, n), ==, want);

  /* the converted F16 tensor lives outside the mapping */
  diffuse__safetensors_release (st, h->data, 1000 * sizeof (float));
  g_assert_cmpfloat (weighted_sum (h->data, 1000), ==, want_h);
  /* a range running past the mapping's end, NULL, nothing */
  diffuse__safetensors_release (st, t->data, G_MAXSIZE / 2);
  diffuse__safetensors_release (st, NULL, 4096);
  diffuse__safetensors_release (NULL, t->data, 4096);
  g_assert_cmpfloat (weighted_sum (t->data, n), ==, want);
  diffuse__safetensors_free (st);
  g_unlink (path);

  /* opened from the caller's bytes: never released */
  file = test_st_serialize (b);
  mem = diffuse__safetensors_open_bytes (g_bytes_get_data (file, NULL),
                                         g_bytes_get_size (file), &error);
  g_assert_no_error (error);
  t = diffuse__safetensors_get (mem, "big");
  diffuse__safetensors_release (mem, t->data, n * sizeof (float));
  g_assert_cmpfloat (weighted_sum (t->data, n), ==, want);
  diffuse__safetensors_free (mem);
}

/* F32 data that is not 4-byte aligned in memory is copied. */
static void
test_unaligned_f32 (void)
{
  g_autoptr (TestSt) b = test_st_new ();
  const gint64 shape[1] = { 5 }, empty[2] = { 0, 3 };
  const float v[5] = { 1.5f, -0.25f, 3e-38f, 1e38f, -7 };
  g_autoptr (GBytes) file = NULL;
  g_autofree guint8 *buf = NULL;
  g_autoptr (GError) error = NULL;
  gsize len;
  DiffuseSafetensors *st;
  const DiffuseTensorInfo *t;
  gint i;

  test_st_add_f32 (b, "empty", 2, empty, NULL);
  test_st_add_f32 (b, "v", 1, shape, v);
  test_st_add_f32 (b, "scalar", 0, NULL, v);
  file = test_st_serialize (b);
  len = g_bytes_get_size (file);
  buf = g_malloc (len + 1);
  memcpy (buf + 1, g_bytes_get_data (file, NULL), len);
  st = diffuse__safetensors_open_bytes (buf + 1, len, &error);
  g_assert_no_error (error);
  t = diffuse__safetensors_get (st, "v");
  g_assert_true ((uintptr_t) t->raw % 4 != 0);
  g_assert_true ((uintptr_t) t->data % 4 == 0);
  for (i = 0; i < 5; i++)
    g_assert_cmpfloat (t->data[i], ==, v[i]);
  t = diffuse__safetensors_get (st, "empty");
  g_assert_cmpint (t->n_elements, ==, 0);
  g_assert_cmpint (t->ndim, ==, 2);
  t = diffuse__safetensors_get (st, "scalar");
  g_assert_cmpint (t->ndim, ==, 0);
  g_assert_cmpint (t->n_elements, ==, 1);
  g_assert_cmpfloat (t->data[0], ==, 1.5f);
  diffuse__safetensors_free (st);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/safetensors/valid", test_valid);
  g_test_add_func ("/safetensors/from-file", test_from_file);
  g_test_add_func ("/safetensors/truncated", test_truncated);
  g_test_add_func ("/safetensors/header-length", test_header_length);
  g_test_add_func ("/safetensors/header-json", test_header_json);
  g_test_add_func ("/safetensors/dtype", test_dtype);
  g_test_add_func ("/safetensors/shape", test_shape);
  g_test_add_func ("/safetensors/offsets", test_offsets);
  g_test_add_func ("/safetensors/duplicates", test_duplicates);
  g_test_add_func ("/safetensors/metadata", test_metadata);
  g_test_add_func ("/safetensors/f16", test_f16);
  g_test_add_func ("/safetensors/bf16", test_bf16);
  g_test_add_func ("/safetensors/unaligned-f32", test_unaligned_f32);
  g_test_add_func ("/safetensors/release", test_release);
  return g_test_run ();
}
