/* machine.h — facts about the machine this process runs on (Linux /proc).
 * defines: mp_machine_cpu_model, mp_machine_mem_available */
#ifndef MP_MACHINE_H
#define MP_MACHINE_H

/* The CPU's "model name" from /proc/cpuinfo ("unknown CPU" when absent);
 * a static string. */
const char *mp_machine_cpu_model(void);

/* MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
double mp_machine_mem_available(void);

#endif
