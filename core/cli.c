/* cli.c — see cli.h. */
#include "cli.h"

#include <string.h>

void mp_cli_longopts(const mp_cli_opt *o, int n, struct option *out)
{
    for (int i = 0; i < n; i++) out[i] = (struct option){ o[i].name, o[i].has_arg, NULL, o[i].id };
    out[n] = (struct option){ NULL, 0, NULL, 0 };
}

void mp_cli_print_options(FILE *f, const mp_cli_opt *o, int n, const char *shorts, int width)
{
    for (int i = 0; i < n; i++) {
        char left[96];
        int k = 0;
        if (o[i].id > 0 && o[i].id < 128 && strchr(shorts, o[i].id)) k = snprintf(left, sizeof left, "-%c, ", o[i].id);
        snprintf(left + k, sizeof left - (size_t)k, "--%s%s%s", o[i].name, o[i].arg ? " " : "",
                 o[i].arg ? o[i].arg : "");
        fprintf(f, "  %-*s %s\n", width, left, o[i].help);
    }
}
