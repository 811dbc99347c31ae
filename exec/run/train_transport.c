/* train_transport.c — which transport a training run uses (train.h): NCCL
 * for --backend cuda under MPI where the op lists allow it.
 * defines: mp_train_pick_transport */
#include "train.h"

#include <stdlib.h>
#include <string.h>

/* The tags of the device messages of `kind` that position pos sends to
 * (sending) or receives from (!sending) position peer, in pos's op order;
 * writes them to out when non-NULL and returns how many. */
static int message_tags(const mp_train_run *r, int pos, int peer, int kind, int sending, int *out)
{
    int n = 0;
    for (int k = 0; k < r->ops.len[pos]; k++) {
        const mp_op *o = &r->ops.ops[pos][k];
        int s = o->stage, i = o->microbatch, from = -1, to = -1, rtag = 0, stag = 0;
        if (o->kind == MP_OP_FWD && kind == MP_TAG_ACT) {
            if (s > 0) { from = mp_train_pos_of(r, s - 1); rtag = MP_TAG(MP_TAG_ACT, s - 1, i); }
            if (s < r->S - 1) { to = mp_train_pos_of(r, s + 1); stag = MP_TAG(MP_TAG_ACT, s, i); }
        } else if ((o->kind == MP_OP_BWD || o->kind == MP_OP_BWD_IN) && kind == MP_TAG_GRAD) {
            if (s < r->S - 1) { from = mp_train_pos_of(r, s + 1); rtag = MP_TAG(MP_TAG_GRAD, s + 1, i); }
            if (s > 0) { to = mp_train_pos_of(r, s - 1); stag = MP_TAG(MP_TAG_GRAD, s, i); }
        }
        if (from == pos) from = -1;   /* on the position itself: not through the transport */
        if (to == pos) to = -1;
        if (!sending && from == peer) { if (out) out[n] = rtag; n++; }
        if (sending && to == peer) { if (out) out[n] = stag; n++; }
    }
    return n;
}

/* 1 when, for every ordered pair of positions and each kind, the receiver
 * posts its receives in the order the sender posts its sends (what a
 * tag-less transport such as NCCL needs). */
static int messages_in_order(const mp_train_run *r)
{
    int ok = 1;
    for (int p = 0; p < r->K && ok; p++)
        for (int q = 0; q < r->K && ok; q++)
            for (int kind = MP_TAG_ACT; kind <= MP_TAG_GRAD && ok; kind++) {
                int ns = message_tags(r, p, q, kind, 1, NULL), nr = message_tags(r, q, p, kind, 0, NULL);
                if (ns != nr) { ok = 0; break; }
                if (!ns) continue;
                int *a = malloc((size_t)ns * sizeof *a), *b = malloc((size_t)nr * sizeof *b);
                if (!a || !b) ok = 0;
                else {
                    message_tags(r, p, q, kind, 1, a);
                    message_tags(r, q, p, kind, 0, b);
                    ok = !memcmp(a, b, (size_t)ns * sizeof *a);
                }
                free(a);
                free(b);
            }
    return ok;
}

/* The configured transport, except that --backend cuda under MPI ("mpi")
 * moves device buffers with NCCL ("nccl") when NCCL was built in, there are
 * at least two positions, they are on distinct GPUs (NCCL allows one rank per
 * GPU in a communicator), and every pair posts its messages in the same order
 * on both sides (NCCL has no tags). Otherwise MPI with host staging.
 * MPKIT_NCCL=0 in the environment keeps MPI. With replicas, every replica
 * runs the same op lists (checked on replica 0's positions) and the gradient
 * all-reduce goes through the host send/recv (MPI) with device adds
 * (train_allreduce.c). */
const char *mp_train_pick_transport(const mp_train_run *r, const mp_pipeline_config *pc)
{
    const mp_run_config *c = r->c;
    if (strcmp(c->transport, "mpi") || strcmp(c->backend, "cuda") || !mp_transport_available("nccl") || r->K < 2)
        return c->transport;
    const char *env = getenv("MPKIT_NCCL");
    if (env && !strcmp(env, "0")) return c->transport;
    for (int p = 0; p < r->P; p++)   /* every replica's positions */
        for (int q = 0; q < p; q++)
            if (mp_pipeline_gpu_of(pc, mp_pipeline_device_of(pc, p)) == mp_pipeline_gpu_of(pc, mp_pipeline_device_of(pc, q)))
                return c->transport;
    return messages_in_order(r) ? "nccl" : c->transport;
}
