/* How much memory a run may still take, for refusing runs that cannot
 * fit before they start (issue 10). */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* "MemAvailable:   123456 kB" from /proc/meminfo, in bytes. */
static guint64
mem_available (void)
{
  g_autofree gchar *text = NULL;
  const char *p;

  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL) ||
      (p = strstr (text, "MemAvailable:")) == NULL)
    return G_MAXUINT64;
  return g_ascii_strtoull (p + strlen ("MemAvailable:"), NULL, 10) * 1024;
}

/* RLIMIT_AS less the address space already mapped (/proc/self/statm's
 * first field, in pages). */
static guint64
address_space_left (void)
{
  struct rlimit lim;
  g_autofree gchar *statm = NULL;
  guint64 mapped;

  if (getrlimit (RLIMIT_AS, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return G_MAXUINT64;
  if (!g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    return lim.rlim_cur;
  mapped =
      g_ascii_strtoull (statm, NULL, 10) * (guint64) sysconf (_SC_PAGESIZE);
  return mapped < lim.rlim_cur ? lim.rlim_cur - mapped : 0;
}

/* cgroup v2: memory.max less memory.current of this process's group. */
static guint64
cgroup_left (void)
{
  g_autofree gchar *cg = NULL, *max_text = NULL, *cur_text = NULL;
  g_autofree gchar *max_path = NULL, *cur_path = NULL;
  const char *rel;
  guint64 max, cur;

  if (!g_file_get_contents ("/proc/self/cgroup", &cg, NULL, NULL) ||
      !g_str_has_prefix (cg, "0::"))
    return G_MAXUINT64;
  rel = cg + 3;
  g_strchomp (cg);
  max_path = g_build_filename ("/sys/fs/cgroup", rel, "memory.max", NULL);
  cur_path = g_build_filename ("/sys/fs/cgroup", rel, "memory.current", NULL);
  if (!g_file_get_contents (max_path, &max_text, NULL, NULL) ||
      g_str_has_prefix (max_text, "max") ||
      !g_file_get_contents (cur_path, &cur_text, NULL, NULL))
    return G_MAXUINT64;
  max = g_ascii_strtoull (max_text, NULL, 10);
  cur = g_ascii_strtoull (cur_text, NULL, 10);
  return cur < max ? max - cur : 0;
}

guint64
cli_available_memory (void)
{
  return MIN (mem_available (), MIN (address_space_left (), cgroup_left ()));
}

gchar *
cli_format_bytes (guint64 bytes)
{
  if (bytes >= (guint64) 1 << 30)
    return g_strdup_printf ("%.1f GiB", bytes / (double) ((guint64) 1 << 30));
  return g_strdup_printf ("%.1f MiB", bytes / (double) (1 << 20));
}
