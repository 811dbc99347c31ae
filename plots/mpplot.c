/* mpplot.c — the pictures: `mpplot SUBCOMMAND ...` dispatches to plots/plot_*.c.
 * Each plot writes IMAGE (.png or .svg) and its .dat and .gp next to it. */
#include <stdio.h>
#include <string.h>

#include "version.h"
#include "plot.h"

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *about;
} subs[] = {
    { "sweep", mp_plot_sweep_main, "predicted samples/s against micro-batch size, per schedule and stage count" },
    { "timeline", mp_plot_timeline_main, "a Chrome trace (or two, stacked) as one row per stage and link" },
    { "latency", mp_plot_latency_main, "serving p50/p99 latency against offered rate, with the SLO" },
    { "accuracy", mp_plot_accuracy_main, "predicted against measured iteration time (make validate)" },
    { "memory", mp_plot_memory_main, "each stage's peak memory against its device's capacity" },
};
#define NSUBS ((int)(sizeof subs / sizeof *subs))

static void usage(FILE *f)
{
    fputs("usage: mpplot SUBCOMMAND [options] -o IMAGE.png|IMAGE.svg\n\n", f);
    for (int i = 0; i < NSUBS; i++) fprintf(f, "  %-10s %s\n", subs[i].name, subs[i].about);
    fputs("\n`mpplot SUBCOMMAND --help` for its options. Needs gnuplot (make deps).\n", f);
}

int main(int argc, char **argv)
{
    if (mp_cli_version(argc, argv, "mpplot")) return 0;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < NSUBS; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].main(argc - 1, argv + 1);
    fprintf(stderr, "mpplot: unknown subcommand \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
