/* diffuse: class-conditional diffusion sampling from the command line.
 *
 *   diffuse info MODEL
 *   diffuse presets
 *   diffuse sample  --model M --out out.png [options]
 *   diffuse img2img --model M --input in.png --strength S --out out.png [options]
 *   diffuse inpaint --model M --input in.png --mask mask.png --out out.png [options]
 *   diffuse forward --model M --input x.npy --timestep T --class C --out eps.npy
 *   diffuse classify --model CLF --input x.npy --timestep T [--class Y]
 *                    --out logits.npy [--grad-out grad.npy]
 *   diffuse nll     --model M --input x.npy|image.png [--out r.json] [options]
 *
 * Each command parses its own options with a GOptionContext; `diffuse
 * COMMAND --help` lists them.  Errors are one line "diffuse: ..." on stderr,
 * exit code 1; usage errors exit with 2.
 */
#include "cli.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "Usage: diffuse COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  info MODEL     print a model's configuration, classes and parameter "
    "count\n"
    "  presets        list the sampling presets\n"
    "  sample         generate images from noise\n"
    "  img2img        re-imagine an input image (partial noising + denoising)\n"
    "  inpaint        regenerate the white part of a mask, continuing the "
    "rest\n"
    "  forward        run the network once on an .npy batch (debugging)\n"
    "  classify       a classifier's logits and gradient of log p(y|x) on an "
    ".npy batch\n"
    "  nll            the variational bound (negative log-likelihood) in "
    "bits/dim\n"
    "\n"
    "'diffuse COMMAND --help' lists the options of a command.\n";

int
main (int argc, char **argv)
{
  const char *command;
  g_autofree gchar *prgname = NULL;

  setlocale (LC_ALL, "");
  g_set_prgname ("diffuse");
  if (argc < 2)
    {
      fputs (usage_text, stderr);
      return CLI_EXIT_USAGE;
    }
  command = argv[1];
  if (strcmp (command, "--help") == 0 || strcmp (command, "-h") == 0 ||
      strcmp (command, "help") == 0)
    {
      fputs (usage_text, stdout);
      return 0;
    }
  if (strcmp (command, "--version") == 0)
    {
      printf ("diffuse %s\n", DIFFUSE_VERSION);
      return 0;
    }

  /* "diffuse sample ..." parses as program "diffuse sample" */
  prgname = g_strdup_printf ("diffuse %s", command);
  g_set_prgname (prgname);
  argv[1] = argv[0];
  argc--;
  argv++;

  if (strcmp (command, "info") == 0)
    return cli_info (argc, argv);
  if (strcmp (command, "presets") == 0)
    return cli_presets (argc, argv);
  if (strcmp (command, "sample") == 0)
    return cli_sample (argc, argv, CLI_SAMPLE);
  if (strcmp (command, "img2img") == 0)
    return cli_sample (argc, argv, CLI_IMG2IMG);
  if (strcmp (command, "inpaint") == 0)
    return cli_sample (argc, argv, CLI_INPAINT);
  if (strcmp (command, "forward") == 0)
    return cli_forward (argc, argv);
  if (strcmp (command, "classify") == 0)
    return cli_classify (argc, argv);
  if (strcmp (command, "nll") == 0)
    return cli_nll (argc, argv);

  g_set_prgname ("diffuse");
  return cli_usage ("unknown command '%s' (commands: info, presets, sample, "
                    "img2img, inpaint, forward, classify, nll)",
                    command);
}
