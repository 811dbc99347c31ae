/* schedule_check.c — the validity checker of op lists (schedule.h): shape,
 * positions, each op once, per-stage order, and no deadlock under the
 * dependencies alone.
 * defines: mp_op_lists_check */
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

/* Ops position p can run next: 1 when o's dependencies are done. */
static int ready(const mp_op_lists *l, const unsigned char *done, const mp_op *o)
{
    int m = l->num_microbatches, S = l->num_stages;
    size_t at = (size_t)o->stage * m + o->microbatch;
    switch (o->kind) {
    case MP_OP_FWD: return o->stage == 0 || (done[4 * (at - m) + MP_OP_FWD]);
    case MP_OP_BWD:
    case MP_OP_BWD_IN:
        return done[4 * at + MP_OP_FWD] &&
               (o->stage == S - 1 || done[4 * (at + m) + MP_OP_BWD] || done[4 * (at + m) + MP_OP_BWD_IN]);
    default: return done[4 * at + MP_OP_BWD_IN];
    }
}

static mp_status check_ops(const mp_op_lists *l, unsigned char *seen, int *next, mp_error *err)
{
    int K = l->num_positions, S = l->num_stages, m = l->num_microbatches, zb = mp_schedule_is_zb(l->kind);
    long long per = (zb ? 3LL : 2LL) * m * (S / K);
    for (int p = 0; p < K; p++) {
        if (l->len[p] != per)
            return mp_error_set(err, MP_ERR_INPUT, "schedule: position %d has %d ops (expected %lld)", p, l->len[p], per);
        for (int i = 0; i < l->len[p]; i++) {
            const mp_op *o = &l->ops[p][i];
            int kind_ok = o->kind == MP_OP_FWD || (zb ? (o->kind == MP_OP_BWD_IN || o->kind == MP_OP_BWD_W)
                                                      : o->kind == MP_OP_BWD);
            if (!kind_ok || o->stage < 0 || o->stage >= S || l->stage_pos[o->stage] != p ||
                o->microbatch < 0 || o->microbatch >= m)
                return mp_error_set(err, MP_ERR_INPUT, "schedule: position %d op %d (%s of stage %d, micro-batch %d) "
                                    "is out of range or on the wrong position", p, i, mp_op_kind_name(o->kind),
                                    o->stage, o->microbatch);
            size_t key = 4 * ((size_t)o->stage * m + o->microbatch) + (size_t)o->kind;
            if (seen[key])
                return mp_error_set(err, MP_ERR_INPUT, "schedule: position %d op %d: %s of stage %d micro-batch %d "
                                    "appears twice", p, i, mp_op_kind_name(o->kind), o->stage, o->microbatch);
            seen[key] = 1;
            int *nx = &next[4 * o->stage + (o->kind == MP_OP_BWD_W ? 1 : o->kind == MP_OP_FWD ? 2 : 0)];
            if (o->kind != MP_OP_FWD && o->microbatch != *nx)
                return mp_error_set(err, MP_ERR_INPUT, "schedule: position %d op %d: %s of stage %d micro-batch %d "
                                    "before micro-batch %d", p, i, mp_op_kind_name(o->kind), o->stage,
                                    o->microbatch, *nx);
            ++*nx;
        }
    }
    return MP_OK;
}

/* See schedule.h. */
mp_status mp_op_lists_check(const mp_op_lists *l, mp_error *err)
{
    if (!l || !l->len || !l->ops || !l->stage_pos || l->num_positions < 1 || l->num_microbatches < 1 ||
        l->num_stages < l->num_positions || l->num_stages % l->num_positions != 0)
        return mp_error_set(err, MP_ERR_INPUT, "schedule: bad op-list shape");
    int K = l->num_positions, S = l->num_stages, m = l->num_microbatches;
    size_t n = 4 * (size_t)S * m;
    unsigned char *seen = calloc(n, 1), *done = calloc(n, 1);
    int *next = calloc(4 * (size_t)S, sizeof *next), *ptr = calloc((size_t)K, sizeof *ptr);
    mp_status st = MP_OK;
    if (!seen || !done || !next || !ptr) {
        st = mp_error_set(err, MP_ERR_NOMEM, "schedule: out of memory for the check");
        goto out;
    }
    for (int s = 0; s < S; s++)
        if (l->stage_pos[s] < 0 || l->stage_pos[s] >= K) {
            st = mp_error_set(err, MP_ERR_INPUT, "schedule: stage %d on position %d of %d", s, l->stage_pos[s], K);
            goto out;
        }
    if ((st = check_ops(l, seen, next, err)) != MP_OK) goto out;
    for (long left = 1; left > 0;) {
        long moved = 0;
        left = 0;
        for (int p = 0; p < K; p++) {
            while (ptr[p] < l->len[p] && ready(l, done, &l->ops[p][ptr[p]])) {
                const mp_op *o = &l->ops[p][ptr[p]++];
                done[4 * ((size_t)o->stage * m + o->microbatch) + (size_t)o->kind] = 1;
                moved++;
            }
            left += l->len[p] - ptr[p];
        }
        if (left > 0 && moved == 0) {
            int p = 0;
            while (ptr[p] >= l->len[p]) p++;
            const mp_op *o = &l->ops[p][ptr[p]];
            st = mp_error_set(err, MP_ERR_INPUT, "schedule: the op lists deadlock: position %d waits forever at "
                              "op %d (%s of stage %d, micro-batch %d)", p, ptr[p], mp_op_kind_name(o->kind),
                              o->stage, o->microbatch);
            goto out;
        }
    }
out:
    free(seen);
    free(done);
    free(next);
    free(ptr);
    return st;
}
