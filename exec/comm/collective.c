/* collective.c — see collective.h: the layer-local-chunk ring all-reduce.
 * defines: mp_coll_io_host, mp_coll_chunk, mp_coll_allreduce */
#include "collective.h"

static mp_status host_send(void *ctx, int dst, int tag, const float *buf, size_t n, mp_error *err)
{
    mp_coll_host *h = ctx;
    return h->t->i->send(h->t, h->self, dst, tag, buf, n * sizeof(float), h->timeout_s, err);
}

static mp_status host_recv(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err)
{
    mp_coll_host *h = ctx;
    return h->t->i->recv(h->t, h->self, src, tag, buf, n * sizeof(float), h->timeout_s, err);
}

static mp_status host_recv_add(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err)
{
    mp_coll_host *h = ctx;
    return h->t->i->recv_add(h->t, h->self, src, tag, buf, n, h->timeout_s, err);
}

mp_coll_io mp_coll_io_host(mp_coll_host *h)
{
    mp_coll_io io = { h, host_send, host_recv, NULL, h->t && h->t->i->recv_add ? host_recv_add : NULL };
    return io;
}

void mp_coll_chunk(size_t len, int n, int c, size_t *lo, size_t *hi)
{
    *lo = (size_t)((unsigned long long)c * len / (unsigned)n);
    *hi = (size_t)((unsigned long long)(c + 1) * len / (unsigned)n);
}

static int mod(int a, int n) { return ((a % n) + n) % n; }

mp_status mp_coll_allreduce(const mp_coll_io *io, const int *ring, int n, int me, int id, float *data, size_t len,
                            float *scratch, mp_error *err)
{
    if (n < 1 || me < 0 || me >= n || id < 0 || id > 1023 || 2 * n > 1 << 18)
        return mp_error_set(err, MP_ERR_INTERNAL, "all-reduce: member %d of a ring of %d (id %d)", me, n, id);
    if (n == 1) return MP_OK;
    int right = ring[(me + 1) % n], left = ring[(me + n - 1) % n];
    mp_status st;
    for (int t = 0; t < n - 1; t++) {   /* reduce-scatter */
        size_t slo, shi, rlo, rhi;
        mp_coll_chunk(len, n, mod(me - t, n), &slo, &shi);
        mp_coll_chunk(len, n, mod(me - t - 1, n), &rlo, &rhi);
        if ((st = io->send(io->ctx, right, MP_TAG(MP_TAG_ALLRED, id, t), data + slo, shi - slo, err)) != MP_OK) return st;
        if (io->recv_add) {   /* added as it arrives: the same sums, one copy less */
            if ((st = io->recv_add(io->ctx, left, MP_TAG(MP_TAG_ALLRED, id, t), data + rlo, rhi - rlo, err)) != MP_OK)
                return st;
            continue;
        }
        if ((st = io->recv(io->ctx, left, MP_TAG(MP_TAG_ALLRED, id, t), scratch, rhi - rlo, err)) != MP_OK) return st;
        if (io->add) {
            if ((st = io->add(io->ctx, data + rlo, scratch, rhi - rlo, err)) != MP_OK) return st;
        } else
            for (size_t i = 0; i < rhi - rlo; i++) data[rlo + i] = data[rlo + i] + scratch[i];
    }
    for (int t = 0; t < n - 1; t++) {   /* all-gather */
        size_t slo, shi, rlo, rhi;
        int tag = MP_TAG(MP_TAG_ALLRED, id, n - 1 + t);
        mp_coll_chunk(len, n, mod(me + 1 - t, n), &slo, &shi);
        mp_coll_chunk(len, n, mod(me - t, n), &rlo, &rhi);
        if ((st = io->send(io->ctx, right, tag, data + slo, shi - slo, err)) != MP_OK) return st;
        if ((st = io->recv(io->ctx, left, tag, data + rlo, rhi - rlo, err)) != MP_OK) return st;
    }
    return MP_OK;
}
