/* Bounds-checked safetensors reader.
 *
 * Layout (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON, then the data
 * region.  The JSON maps tensor names to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the data region) and
 * may hold "__metadata__", an object of strings.
 *
 * Files are untrusted: every length, offset and element count is checked
 * against the file size, with overflow checks, before anything is used or
 * allocated.  As in the reference implementation the tensors must tile the
 * data region exactly (no holes, no overlaps).  F16 and BF16 tensors, and
 * F32 tensors that are not 4-byte aligned in memory, are converted to F32
 * once, into one buffer owned here; aligned F32 data is used in place. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "diffuse-private.h"

/* The reference implementation's limit on the header size. */
#define MAX_HEADER_BYTES (100u * 1024u * 1024u)
/* JSON nesting the format needs is 3 ({ "t": { "shape": [ ] } }); the cap
 * keeps json-glib's recursive parser far from the stack limit. */
#define MAX_JSON_DEPTH 16

struct _DiffuseSafetensors
{
  gchar *name;                /* for messages: the path, or "<memory>" */
  GMappedFile *map;           /* NULL when opened from caller's bytes */
  DiffuseTensorInfo *tensors; /* [n_tensors], header order */
  guint n_tensors;
  GHashTable *by_name;  /* name -> DiffuseTensorInfo * */
  GHashTable *metadata; /* key -> value, both owned */
  float *converted;     /* F32 copies of converted tensors */
  gboolean has_stat;    /* opened from a file: its fstat () at open */
  struct stat stat;
  const guint8 *bytes; /* the whole file (or the caller's bytes) */
  gsize len;
};

static const struct
{
  const char *name;
  gsize size;
} dtypes[DIFFUSE__DTYPE_COUNT] = {
  [DIFFUSE__DTYPE_F32] = { "F32", 4 },
  [DIFFUSE__DTYPE_F16] = { "F16", 2 },
  [DIFFUSE__DTYPE_BF16] = { "BF16", 2 },
};

/* Other dtypes the format defines: named in the error as unsupported
 * rather than unknown. */
static const char *const other_dtypes[] = {
  "F64", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16",
  "I8",  "U64",     "U32",     "U16", "U8",  "BOOL",
};

void
diffuse__safetensors_free (DiffuseSafetensors *st)
{
  guint i;

  if (st == NULL)
    return;
  for (i = 0; i < st->n_tensors; i++)
    g_free (st->tensors[i].name);
  g_free (st->tensors);
  if (st->by_name != NULL)
    g_hash_table_unref (st->by_name);
  if (st->metadata != NULL)
    g_hash_table_unref (st->metadata);
  g_free (st->converted);
  if (st->map != NULL)
    g_mapped_file_unref (st->map);
  g_free (st->name);
  g_free (st);
}

static gboolean fail (GError **error, const DiffuseSafetensors *st,
                      const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
fail (GError **error, const DiffuseSafetensors *st, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  diffuse__set_named_errorv (error, DIFFUSE_ERROR_FORMAT, st->name, format,
                             args);
  va_end (args);
  return FALSE;
}

/* json-glib's parser recurses once per nesting level, and its scanner
 * also takes single-quoted strings and comments, which could hide
 * brackets from a simple count.  So: plain JSON tokens only outside
 * double-quoted strings, then the nesting depth is exact. */
const char *
diffuse__json_check (const char *text, gsize n, gint max_depth)
{
  gboolean in_string = FALSE;
  gboolean escaped = FALSE;
  gint depth = 0;
  gsize i;

  for (i = 0; i < n; i++)
    {
      char c = text[i];

      if (in_string)
        {
          if (escaped)
            {
              escaped = FALSE;
              /* json-glib would cut the string at an escaped NUL, and a
               * tensor name "a\u0000x" would pass as "a" */
              if (c == 'u' && n - i > 4 &&
                  memcmp (text + i + 1, "0000", 4) == 0)
                return "not usable: a string holds an escaped NUL (\\u0000)";
            }
          else if (c == '\\')
            escaped = TRUE;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > max_depth)
            return "nested too deeply";
        }
      else if (c == '}' || c == ']')
        depth--;
      else if (c == '\0' ||
               (!g_ascii_isalnum (c) && strchr (" \t\n\r,:+-.", c) == NULL))
        return "not plain JSON";
    }
  return NULL;
}

/* Rejects NUL bytes (json-glib would silently cut strings there) and JSON
 * nested deeper than MAX_JSON_DEPTH. */
static gboolean
check_header_text (const DiffuseSafetensors *st, const char *text, gsize n,
                   GError **error)
{
  const char *why;

  if (memchr (text, '\0', n) != NULL)
    return fail (error, st, "header contains a NUL byte");
  if (!g_utf8_validate_len (text, n, NULL))
    return fail (error, st, "header is not valid UTF-8");
  if ((why = diffuse__json_check (text, n, MAX_JSON_DEPTH)) != NULL)
    return fail (error, st, "header is %s", why);
  return TRUE;
}

/* json-glib keeps the last of duplicate keys without a word; the
 * "object-member" signal still fires for each, so count them. */
typedef struct
{
  GHashTable *seen; /* "object-pointer/name" */
  gchar *duplicate; /* first duplicate key */
} DuplicateCheck;

static void
on_object_member (JsonParser *parser, JsonObject *object, const gchar *name,
                  gpointer user_data)
{
  DuplicateCheck *check = user_data;
  gchar *key;

  (void) parser;
  if (check->duplicate != NULL)
    return;
  key = g_strdup_printf ("%p/%s", (void *) object, name);
  if (!g_hash_table_add (check->seen, key))
    check->duplicate = g_strdup (name);
}

/* A JSON integer >= 0.  json-glib wraps integers beyond 64 bits, which
 * then fail the range checks that follow every use. */
static gboolean
get_nonneg_int (JsonNode *node, gint64 *out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return *out >= 0;
}

static gboolean
parse_metadata (DiffuseSafetensors *st, JsonNode *node, GError **error)
{
  JsonObject *obj;
  GList *members, *l;
  gboolean ok = TRUE;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, st, "__metadata__ is not a JSON object");
  obj = json_node_get_object (node);
  members = json_object_get_members (obj);
  for (l = members; l != NULL && ok; l = l->next)
    {
      const char *key = l->data;
      JsonNode *value = json_object_get_member (obj, key);

      if (!JSON_NODE_HOLDS_VALUE (value) ||
          json_node_get_value_type (value) != G_TYPE_STRING)
        ok =
            fail (error, st, "__metadata__ value of '%s' is not a string", key);
      else
        g_hash_table_insert (st->metadata, g_strdup (key),
                             g_strdup (json_node_get_string (value)));
    }
  g_list_free (members);
  return ok;
}

static gboolean
parse_dtype (DiffuseSafetensors *st, const char *tname, JsonNode *node,
             DiffuseDtype *out, GError **error)
{
  const char *s;
  guint i;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    return fail (error, st, "tensor '%s': \"dtype\" is missing or not a string",
                 tname);
  s = json_node_get_string (node);
  for (i = 0; i < DIFFUSE__DTYPE_COUNT; i++)
    if (strcmp (s, dtypes[i].name) == 0)
      {
        *out = (DiffuseDtype) i;
        return TRUE;
      }
  for (i = 0; i < G_N_ELEMENTS (other_dtypes); i++)
    if (strcmp (s, other_dtypes[i]) == 0)
      return fail (
          error, st,
          "tensor '%s': dtype %s is not supported (F32, F16 and BF16 are)",
          tname, s);
  return fail (error, st, "tensor '%s': unknown dtype \"%s\"", tname, s);
}

/* Fills ndim, shape and n_elements; the element count and its byte size
 * must fit in 63 bits. */
static gboolean
parse_shape (DiffuseSafetensors *st, const char *tname, JsonNode *node,
             DiffuseTensorInfo *t, GError **error)
{
  JsonArray *arr;
  guint n, i;
  guint64 count = 1;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return fail (error, st, "tensor '%s': \"shape\" is missing or not an array",
                 tname);
  arr = json_node_get_array (node);
  n = json_array_get_length (arr);
  if (n > 4)
    return fail (error, st,
                 "tensor '%s' has %u dimensions, at most 4 are supported",
                 tname, n);
  t->ndim = (gint) n;
  for (i = 0; i < n; i++)
    {
      gint64 d;

      if (!get_nonneg_int (json_array_get_element (arr, i), &d))
        return fail (
            error, st,
            "tensor '%s': shape entry %u is not a non-negative integer", tname,
            i);
      t->shape[i] = d;
      if (!g_uint64_checked_mul (&count, count, (guint64) d) ||
          count > G_MAXINT64 / 4)
        return fail (error, st, "tensor '%s': element count overflows", tname);
    }
  t->n_elements = (gint64) count;
  return TRUE;
}

static gboolean
parse_tensor (DiffuseSafetensors *st, const char *tname, JsonNode *node,
              guint64 data_len, DiffuseTensorInfo *t, gint64 *begin,
              GError **error)
{
  JsonObject *obj;
  JsonArray *offs;
  JsonNode *offs_node;
  GList *members, *l;
  gint64 end;
  guint64 n_bytes;

  if (*tname == '\0')
    return fail (error, st, "empty tensor name");
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, st, "entry of tensor '%s' is not a JSON object", tname);
  obj = json_node_get_object (node);

  members = json_object_get_members (obj);
  for (l = members; l != NULL; l = l->next)
    if (g_strcmp0 (l->data, "dtype") != 0 &&
        g_strcmp0 (l->data, "shape") != 0 &&
        g_strcmp0 (l->data, "data_offsets") != 0)
      {
        fail (error, st, "tensor '%s': unexpected field \"%s\"", tname,
              (const char *) l->data);
        g_list_free (members);
        return FALSE;
      }
  g_list_free (members);

  if (!parse_dtype (st, tname, json_object_get_member (obj, "dtype"), &t->dtype,
                    error) ||
      !parse_shape (st, tname, json_object_get_member (obj, "shape"), t, error))
    return FALSE;

  offs_node = json_object_get_member (obj, "data_offsets");
  if (offs_node == NULL || !JSON_NODE_HOLDS_ARRAY (offs_node) ||
      json_array_get_length (offs = json_node_get_array (offs_node)) != 2 ||
      !get_nonneg_int (json_array_get_element (offs, 0), begin) ||
      !get_nonneg_int (json_array_get_element (offs, 1), &end))
    return fail (error, st,
                 "tensor '%s': \"data_offsets\" is not an array of two "
                 "non-negative integers",
                 tname);
  if (*begin > end)
    return fail (error, st,
                 "tensor '%s': data_offsets [%" G_GINT64_FORMAT
                 ", %" G_GINT64_FORMAT "] are reversed",
                 tname, *begin, end);
  if ((guint64) end > data_len)
    return fail (error, st,
                 "tensor '%s': data ends at byte %" G_GINT64_FORMAT
                 " of the data region, which holds only %" G_GUINT64_FORMAT
                 " bytes",
                 tname, end, data_len);
  n_bytes = (guint64) t->n_elements * dtypes[t->dtype].size;
  if ((guint64) (end - *begin) != n_bytes)
    return fail (error, st,
                 "tensor '%s': data_offsets span %" G_GINT64_FORMAT
                 " bytes, but %s shape needs %" G_GUINT64_FORMAT,
                 tname, end - *begin, dtypes[t->dtype].name, n_bytes);
  t->name = g_strdup (tname);
  return TRUE;
}

typedef struct
{
  gint64 begin, end;
  guint index;
} Span;

static gint
compare_spans (gconstpointer a, gconstpointer b)
{
  const Span *x = a, *y = b;

  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* As the reference implementation demands: the tensors tile the data
 * region, so no byte of the file goes unaccounted for. */
static gboolean
check_tiling (DiffuseSafetensors *st, Span *spans, guint n, guint64 data_len,
              GError **error)
{
  gint64 pos = 0;
  guint i;

  if (n > 1)
    qsort (spans, n, sizeof (Span), compare_spans);
  for (i = 0; i < n; i++)
    {
      if (spans[i].begin != pos)
        return fail (error, st,
                     "tensor '%s': data starts at byte %" G_GINT64_FORMAT
                     ", expected %" G_GINT64_FORMAT
                     " (tensors must not overlap or leave holes)",
                     st->tensors[spans[i].index].name, spans[i].begin, pos);
      pos = spans[i].end;
    }
  if ((guint64) pos != data_len)
    return fail (error, st,
                 "%" G_GUINT64_FORMAT
                 " bytes at the end of the data region belong to no tensor",
                 data_len - (guint64) pos);
  return TRUE;
}

/* IEEE 754 binary16 -> binary32, exact (every half is a float). */
static float
half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000u) << 16;
  guint32 exp = (h >> 10) & 0x1fu;
  guint32 mant = h & 0x3ffu;
  guint32 bits;
  float f;

  if (exp == 0x1f)
    bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN */
  else if (exp != 0)
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (mant == 0)
    bits = sign; /* ±0 */
  else
    {
      /* subnormal m·2^-24: shift the leading 1 into the implicit bit */
      exp = 113;
      while ((mant & 0x400u) == 0)
        {
          mant <<= 1;
          exp--;
        }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  memcpy (&f, &bits, sizeof f);
  return f;
}

static void
convert (const DiffuseTensorInfo *t, float *dst)
{
  const guint8 *p = t->raw;
  gint64 i;

  for (i = 0; i < t->n_elements; i++)
    {
      guint32 bits;

      switch (t->dtype)
        {
        case DIFFUSE__DTYPE_F16:
          dst[i] = half_to_float ((guint16) (p[2 * i] | (p[2 * i + 1] << 8)));
          continue;
        case DIFFUSE__DTYPE_BF16:
          bits = (guint32) (p[2 * i] | (p[2 * i + 1] << 8)) << 16;
          break;
        case DIFFUSE__DTYPE_F32:
        default:
          bits = (guint32) p[4 * i] | ((guint32) p[4 * i + 1] << 8) |
                 ((guint32) p[4 * i + 2] << 16) |
                 ((guint32) p[4 * i + 3] << 24);
          break;
        }
      memcpy (&dst[i], &bits, sizeof bits);
    }
}

static gboolean
needs_copy (const DiffuseTensorInfo *t)
{
  if (t->dtype != DIFFUSE__DTYPE_F32)
    return TRUE;
  return G_BYTE_ORDER != G_LITTLE_ENDIAN || ((uintptr_t) t->raw % 4) != 0;
}

static gboolean
convert_tensors (DiffuseSafetensors *st, GError **error)
{
  guint64 total = 0;
  guint i;
  float *dst;

  for (i = 0; i < st->n_tensors; i++)
    {
      DiffuseTensorInfo *t = &st->tensors[i];

      if (needs_copy (t))
        total += (guint64) t->n_elements;
      else
        t->data = (const float *) (gconstpointer) t->raw;
    }
  if (total == 0)
    return TRUE;
  /* total <= file size / 2, so the product cannot overflow */
  st->converted = g_try_malloc ((gsize) total * sizeof (float));
  if (st->converted == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "%s: cannot allocate %" G_GUINT64_FORMAT
                   " bytes to convert tensors to F32",
                   st->name, total * sizeof (float));
      return FALSE;
    }
  dst = st->converted;
  for (i = 0; i < st->n_tensors; i++)
    {
      DiffuseTensorInfo *t = &st->tensors[i];

      if (needs_copy (t))
        {
          convert (t, dst);
          t->data = dst;
          dst += t->n_elements;
        }
    }
  return TRUE;
}

static gboolean
parse_header (DiffuseSafetensors *st, const guint8 *bytes, gsize len,
              gboolean header_only, GError **error)
{
  guint64 header_len = 0, data_len;
  const guint8 *data;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) json_error = NULL;
  g_autofree Span *spans = NULL;
  DuplicateCheck dup = { NULL, NULL };
  JsonNode *root;
  JsonObject *obj;
  GList *members = NULL, *l;
  gboolean ok = FALSE;
  guint i, n;

  if (len < 8)
    return fail (error, st,
                 "file is %" G_GSIZE_FORMAT " bytes long, too short for a "
                 "safetensors header",
                 len);
  for (i = 0; i < 8; i++)
    header_len |= (guint64) bytes[i] << (8 * i);
  /* the format's header "MUST begin with a {": a file whose length
   * field cannot be right and that has no '{' after it (a text file, a
   * PNG) is not a safetensors file at all */
  if (header_len > len - 8 && (len == 8 || bytes[8] != '{'))
    return fail (error, st,
                 "not a safetensors file (its first 8 bytes give "
                 "a header length of %" G_GUINT64_FORMAT
                 " for a file of %" G_GSIZE_FORMAT
                 " bytes, and no JSON header follows)",
                 header_len, len);
  if (header_len == 0)
    return fail (error, st, "header length is zero");
  if (header_len > len - 8)
    return fail (error, st,
                 "header length %" G_GUINT64_FORMAT
                 " is larger than the %" G_GSIZE_FORMAT " bytes that follow it",
                 header_len, len - 8);
  if (header_len > MAX_HEADER_BYTES)
    return fail (error, st,
                 "header length %" G_GUINT64_FORMAT
                 " exceeds the limit of %u bytes",
                 header_len, MAX_HEADER_BYTES);
  if (!check_header_text (st, (const char *) bytes + 8, header_len, error))
    return FALSE;
  data = bytes + 8 + header_len;
  data_len = len - 8 - header_len;

  parser = json_parser_new ();
  dup.seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member),
                    &dup);
  if (!json_parser_load_from_data (parser, (const char *) bytes + 8,
                                   (gssize) header_len, &json_error))
    {
      fail (error, st, "header is not valid JSON: %s", json_error->message);
      goto out;
    }
  if (dup.duplicate != NULL)
    {
      fail (error, st, "header has the key '%s' twice", dup.duplicate);
      goto out;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      fail (error, st, "header is not a JSON object");
      goto out;
    }
  obj = json_node_get_object (root);
  members = json_object_get_members (obj);
  n = g_list_length (members);
  st->tensors = g_new0 (DiffuseTensorInfo, n);
  spans = g_new0 (Span, n);
  for (l = members; l != NULL; l = l->next)
    {
      const char *key = l->data;
      JsonNode *node = json_object_get_member (obj, key);
      DiffuseTensorInfo *t = &st->tensors[st->n_tensors];
      gint64 begin = 0;

      if (strcmp (key, "__metadata__") == 0)
        {
          if (!parse_metadata (st, node, error))
            goto out;
          continue;
        }
      if (!parse_tensor (st, key, node, data_len, t, &begin, error))
        goto out;
      t->raw = data + begin;
      spans[st->n_tensors].begin = begin;
      spans[st->n_tensors].end =
          begin + t->n_elements * (gint64) dtypes[t->dtype].size;
      spans[st->n_tensors].index = st->n_tensors;
      st->n_tensors++;
      g_hash_table_insert (st->by_name, t->name, t);
    }
  if (!check_tiling (st, spans, st->n_tensors, data_len, error) ||
      (!header_only && !convert_tensors (st, error)))
    goto out;
  ok = TRUE;

out:
  g_list_free (members);
  g_hash_table_unref (dup.seen);
  g_free (dup.duplicate);
  return ok;
}

static DiffuseSafetensors *
open_common (const char *name, GMappedFile *map, const guint8 *bytes, gsize len,
             gboolean header_only, GError **error)
{
  DiffuseSafetensors *st = g_new0 (DiffuseSafetensors, 1);

  st->name = g_strdup (name);
  st->map = map;
  st->bytes = bytes;
  st->len = len;
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!parse_header (st, bytes, len, header_only, error))
    {
      diffuse__safetensors_free (st);
      return NULL;
    }
  return st;
}

static DiffuseSafetensors *
open_file (const char *path, gboolean header_only, GError **error)
{
  g_autoptr (GError) map_error = NULL;
  g_autofree gchar *display = NULL;
  GMappedFile *map;
  DiffuseSafetensors *st;
  struct stat sb;
  guint64 size = 0;
  gint fd;

  g_return_val_if_fail (path != NULL, NULL);
  display = g_filename_display_name (path);
  /* a regular file only: a FIFO would block, a directory or device has
   * nothing to map (refused with a message naming what it is) */
  fd = diffuse__open_regular (path, &size, error);
  if (fd < 0)
    return NULL;
  if (size == 0)
    {
      close (fd);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: not a safetensors file (it is empty)", display);
      return NULL;
    }
  if (fstat (fd, &sb) != 0)
    memset (&sb, 0, sizeof sb);
  map = g_mapped_file_new_from_fd (fd, FALSE, &map_error);
  close (fd);
  if (map == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s: cannot map: %s",
                   display, map_error->message);
      return NULL;
    }
  st = open_common (display, map,
                    (const guint8 *) g_mapped_file_get_contents (map),
                    g_mapped_file_get_length (map), header_only, error);
  if (st != NULL && sb.st_ino != 0)
    {
      st->has_stat = TRUE;
      st->stat = sb;
    }
  return st;
}

/* Drops this process's resident copy of the whole pages inside the mapped
 * bytes [p, p + n): they stay in the kernel's page cache and come back
 * from it (without a read) if touched again.  The mapping is read-only
 * and private, so nothing can be lost; anything outside it (a converted
 * copy, the caller's bytes) is left alone. */
void
diffuse__safetensors_release (const DiffuseSafetensors *st, const void *p,
                              gsize n)
{
  glong page = sysconf (_SC_PAGESIZE);
  guintptr b, e, lo, hi;

  if (st == NULL || st->map == NULL || p == NULL || page <= 0)
    return;
  b = (guintptr) p;
  lo = (guintptr) st->bytes;
  hi = lo + st->len;
  if (b < lo || b > hi || n > hi - b)
    return;
  e = (b + n) / (guintptr) page * (guintptr) page;
  b = (b + (guintptr) page - 1) / (guintptr) page * (guintptr) page;
  if (e > b)
    madvise ((void *) b, e - b, MADV_DONTNEED); /* advice: failure is fine */
}

DiffuseSafetensors *
diffuse__safetensors_open (const char *path, GError **error)
{
  return open_file (path, FALSE, error);
}

/* The header only: every check of the header and of the tensors' layout,
 * but no tensor is converted (their data pointers stay NULL), so that
 * only the header's pages of the mapped file are read. */
DiffuseSafetensors *
diffuse__safetensors_open_header (const char *path, GError **error)
{
  return open_file (path, TRUE, error);
}

DiffuseSafetensors *
diffuse__safetensors_open_bytes (const guint8 *bytes, gsize len, GError **error)
{
  g_return_val_if_fail (bytes != NULL || len == 0, NULL);
  return open_common ("<memory>", NULL, bytes, len, FALSE, error);
}

const struct stat *
diffuse__safetensors_get_stat (const DiffuseSafetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->has_stat ? &st->stat : NULL;
}

gboolean
diffuse__safetensors_get_bytes (const DiffuseSafetensors *st,
                                const guint8 **bytes, gsize *len)
{
  g_return_val_if_fail (st != NULL, FALSE);
  *bytes = st->bytes;
  *len = st->len;
  return st->bytes != NULL;
}

const DiffuseTensorInfo *
diffuse__safetensors_get (const DiffuseSafetensors *st, const char *name)
{
  g_return_val_if_fail (st != NULL && name != NULL, NULL);
  return g_hash_table_lookup (st->by_name, name);
}

static void
format_shape (GString *out, gint ndim, const gint64 *shape)
{
  gint i;

  g_string_append_c (out, '[');
  for (i = 0; i < ndim; i++)
    g_string_append_printf (out, "%s%" G_GINT64_FORMAT, i > 0 ? ", " : "",
                            shape[i]);
  g_string_append_c (out, ']');
}

static gboolean named_error (GError **error, const char *name,
                             const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
named_error (GError **error, const char *name, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  diffuse__set_named_errorv (error, DIFFUSE_ERROR_MODEL, name, format, args);
  va_end (args);
  return FALSE;
}

const DiffuseTensorInfo *
diffuse__safetensors_get_shaped (const DiffuseSafetensors *st,
                                 const char *file_name, const char *name,
                                 gint ndim, const gint64 *shape, GError **error)
{
  const DiffuseTensorInfo *t;
  gboolean same;
  gint i;

  g_return_val_if_fail (st != NULL && file_name != NULL && name != NULL, NULL);
  g_return_val_if_fail (ndim >= 0 && ndim <= 4 && (ndim == 0 || shape != NULL),
                        NULL);

  t = diffuse__safetensors_get (st, name);
  if (t == NULL)
    {
      named_error (error, file_name, "tensor '%s' is missing", name);
      return NULL;
    }
  same = t->ndim == ndim;
  for (i = 0; same && i < ndim; i++)
    same = t->shape[i] == shape[i];
  if (!same)
    {
      g_autoptr (GString) msg = g_string_new (NULL);

      g_string_append_printf (msg, "tensor '%s' has shape ", name);
      format_shape (msg, t->ndim, t->shape);
      g_string_append (msg, ", expected ");
      format_shape (msg, ndim, shape);
      named_error (error, file_name, "%s", msg->str);
      return NULL;
    }
  return t;
}

guint
diffuse__safetensors_get_n_tensors (const DiffuseSafetensors *st)
{
  g_return_val_if_fail (st != NULL, 0);
  return st->n_tensors;
}

const DiffuseTensorInfo *
diffuse__safetensors_get_nth (const DiffuseSafetensors *st, guint index)
{
  g_return_val_if_fail (st != NULL && index < st->n_tensors, NULL);
  return &st->tensors[index];
}

const char *
diffuse__safetensors_get_metadata (const DiffuseSafetensors *st,
                                   const char *key)
{
  g_return_val_if_fail (st != NULL && key != NULL, NULL);
  return g_hash_table_lookup (st->metadata, key);
}
