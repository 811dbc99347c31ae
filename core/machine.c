/* machine.c — see machine.h. */
#include "machine.h"

#include <stdio.h>
#include <string.h>

const char *mp_machine_cpu_model(void)
{
    static char model[256];
    if (model[0]) return model;
    snprintf(model, sizeof model, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return model;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && c) {
            snprintf(model, sizeof model, "%s", c + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    }
    fclose(f);
    return model;
}

double mp_machine_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024.0;
}

mp_cpu_sample mp_machine_cpu_sample(void)
{
    mp_cpu_sample s = { 0, 0, 0, 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return s;
    double v[8] = { 0 };
    int n = fscanf(f, "cpu %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 7) return s;
    /* user nice system idle iowait irq softirq steal */
    s.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    s.total = s.busy + v[3] + v[4];
    f = fopen("/proc/self/stat", "r");
    if (!f) return s;
    char buf[1024];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    double ut = 0, stt = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lf %lf", &ut, &stt) != 2) return s;
    s.own = ut + stt;
    s.ok = 1;
    return s;
}

double mp_machine_others_pct(const mp_cpu_sample *a, const mp_cpu_sample *b, double extra_own)
{
    if (!a->ok || !b->ok) return -1;
    double total = b->total - a->total;
    if (!(total > 0)) return -1;
    double others = (b->busy - a->busy) - (b->own - a->own) - extra_own;
    double pct = 100.0 * others / total;
    return pct < 0 ? 0 : pct > 100 ? 100 : pct;
}

unsigned mp_machine_boot_id(void)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f) return 0;
    unsigned h = 2166136261u;   /* FNV-1a */
    for (int c; (c = fgetc(f)) != EOF && c != '\n';) h = (h ^ (unsigned char)c) * 16777619u;
    fclose(f);
    return h ? h : 1;
}
