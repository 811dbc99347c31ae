/* bench_sim.c — simulator speed: ops simulated per second on one warm
 * workspace (the planner's use), median of several runs. Target >= 10 Mops/s. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "stats.h"
#include "schedule.h"
#include "sim.h"

#define RUNS 15

/* Returns the Mops/s of one configuration (0 on failure), printing a row. */
static double bench(mp_sim *sim, mp_schedule_kind kind, int K, int v, int m)
{
    mp_op_lists l;
    if (mp_schedule_build(kind, K, v, m, &l, NULL) != MP_OK) return 0;
    int S = l.num_stages;
    double *F = malloc(4 * (size_t)S * sizeof *F);
    double *B = F + S, *act = F + 2 * S, *grad = F + 3 * S;
    for (int s = 0; s < S; s++) {
        F[s] = 1.0 + 0.1 * (s % 7);
        B[s] = 2.0 + 0.2 * (s % 5);
        act[s] = grad[s] = 0.05 + 0.01 * (s % 3);
    }
    mp_sim_input in = { .ops = &l, .fwd_ms = F, .bwd_ms = B, .act_ms = act, .grad_ms = grad };
    mp_sim_result r;
    long ops = 2L * m * S;
    double t[RUNS];
    if (mp_sim_run(sim, &in, &r, NULL, NULL) != MP_OK) return 0;  /* warm-up */
    for (int i = 0; i < RUNS; i++) {
        double t0 = mp_now_ms();
        mp_sim_run(sim, &in, &r, NULL, NULL);
        t[i] = mp_now_ms() - t0;
    }
    qsort(t, RUNS, sizeof t[0], mp_cmp_double);
    double med = t[RUNS / 2], mops = ops / (med * 1e3);
    char name[32];
    if (kind == MP_SCHED_INTERLEAVED) snprintf(name, sizeof name, "interleaved v=%d", v);
    else snprintf(name, sizeof name, "%s", kind == MP_SCHED_GPIPE ? "gpipe" : "1f1b");
    printf("%6d %6d  %-16s %10ld %10.3f %9.1f\n", K, m, name, ops, med, mops);
    free(F);
    mp_op_lists_free(&l);
    return mops;
}

int main(void)
{
    mp_sim *sim = mp_sim_new();
    printf("# mpkit simulator speed (one warm workspace, median of %d runs)\n", RUNS);
    printf("%6s %6s  %-16s %10s %10s %9s\n", "K", "m", "schedule", "ops", "median", "Mops/s");
    printf("%6s %6s  %-16s %10s %10s %9s\n", "", "", "", "", "ms", "");
    const int Ks[] = { 4, 16, 64 };
    double worst = 1e30;
    for (int k = 0; k < 3; k++) {
        const mp_schedule_kind kinds[] = { MP_SCHED_GPIPE, MP_SCHED_1F1B, MP_SCHED_INTERLEAVED };
        for (int j = 0; j < 3; j++) {
            double r = bench(sim, kinds[j], Ks[k], 2, 1024);
            if (r < worst) worst = r;
        }
    }
    /* small instances, as the planner's search sees them (per-run overhead) */
    for (int j = 0; j < 3; j++) {
        const mp_schedule_kind kinds[] = { MP_SCHED_GPIPE, MP_SCHED_1F1B, MP_SCHED_INTERLEAVED };
        double r = bench(sim, kinds[j], 4, 2, 16);
        if (r < worst) worst = r;
    }
    int ok = worst >= 10.0;
    printf("# %s: slowest %.1f Mops/s (target >= 10)\n", ok ? "OK" : "SLOW", worst);
    mp_sim_free(sim);
    return 0;
}
