/* plot_busy.c — telling on the picture when the measurements it shows were
 * taken on a busy machine (see plot.h).
 * defines: mp_plot_busy_scan, mp_plot_busy_title */
#include "plot.h"

#include <string.h>

void mp_plot_busy_scan(const json_t *j, double *max)
{
    double v;
    if (!json_is_object(j)) return;
    if (mp_plot_json_num(j, "others_pct", &v) == 1 && v > *max) *max = v;
    const json_t *o = json_object_get(j, "otherData");
    if (json_is_object(o) && mp_plot_json_num(o, "others_pct", &v) == 1 && v > *max) *max = v;
}

void mp_plot_busy_title(char *t, size_t n, double max)
{
    size_t len = strlen(t);
    if (max > MP_PLOT_BUSY_PCT && len < n)
        snprintf(t + len, n - len, " — machine busy: other processes took %.0f%% of the CPUs", max);
}
