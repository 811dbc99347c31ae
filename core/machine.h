/* machine.h — facts about the machine this process runs on (Linux /proc).
 * defines: mp_machine_cpu_model, mp_machine_mem_available, mp_cpu_sample,
 *          mp_machine_cpu_sample, mp_machine_others_pct, mp_machine_boot_id */
#ifndef MP_MACHINE_H
#define MP_MACHINE_H

/* The CPU's "model name" from /proc/cpuinfo ("unknown CPU" when absent);
 * a static string. */
const char *mp_machine_cpu_model(void);

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
double mp_machine_mem_available(void);

/* CPU time counters at one instant, in clock ticks: the whole machine's
 * (/proc/stat: busy = user+nice+system+irq+softirq+steal, total adds idle and
 * iowait) and this process's own (every thread: utime+stime of
 * /proc/self/stat). */
typedef struct {
    double busy, total, own;
    int ok;                /* 0: /proc could not be read */
} mp_cpu_sample;

/* Reads the counters now. */
mp_cpu_sample mp_machine_cpu_sample(void);

/* The share of all CPU time between samples a and b that other processes
 * took, in percent of the machine (0..100): (busy - own - extra_own) /
 * total, where extra_own is CPU time (ticks) of this job's other processes
 * on the same machine (e.g. MPI ranks), 0 if none. -1 when a sample failed
 * or no time passed. */
double mp_machine_others_pct(const mp_cpu_sample *a, const mp_cpu_sample *b, double extra_own);

/* A hash of the running kernel's boot id (/proc/sys/kernel/random/boot_id),
 * the same for every process on this machine, network namespaces included;
 * 0 when unknown. Tells which MPI ranks share a machine's CPUs. */
unsigned mp_machine_boot_id(void);

#endif
