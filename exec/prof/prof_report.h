/* prof_report.h — mpprof's JSON documents and human tables (private to exec/).
 * defines: mp_prof_profile_json, mp_prof_machine_json, mp_prof_versions_json,
 *          mp_prof_print_header, mp_prof_print_layers, mp_prof_print_links */
#ifndef MP_PROF_REPORT_H
#define MP_PROF_REPORT_H

#include <jansson.h>
#include <stdio.h>
#include "prof.h"

/* The profile document: mpplan-profile/1 fields (tables of medians) plus
 * per layer fit/spread/workspace_bytes/allocated_bytes/type and top-level
 * machine/backend/library_versions/settings. New reference or NULL. */
json_t *mp_prof_profile_json(const mp_model *m, const mp_prof_layer *L, const mp_prof_settings *s,
                             const char *backend_desc, const char *backend_name, int device);
json_t *mp_prof_machine_json(void);
json_t *mp_prof_versions_json(void);

/* "# mpprof: ..." header lines (machine, backend, libraries). */
void mp_prof_print_header(FILE *f, const char *tool_line, const char *backend_desc);
/* Per-layer table: fwd/bwd medians and spread at each b, then the fit. */
void mp_prof_print_layers(FILE *f, const mp_model *m, const mp_prof_layer *L, const mp_prof_settings *s);
void mp_prof_print_links(FILE *f, const mp_link_fit *fit);

#endif
