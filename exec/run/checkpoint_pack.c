/* checkpoint_pack.c — a training stage's parameters (and Adam moments)
 * between its layers on the backend and host buffers in layer order: what
 * checkpoint.c writes and reads, and what the run's checksum hashes.
 * defines: mp_train_pack_params, mp_train_checkpoint, mp_train_hash_stage */
#include "train.h"
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"

mp_status mp_train_pack_params(mp_train_worker *w, mp_train_stage *v, float *wbuf, float *mbuf, float *vbuf)
{
    size_t off = 0;
    for (int i = 0; i < v->net.count; i++) {
        mp_layer *l = &v->net.layers[i];
        if (!l->nparams) continue;
        mp_layer_get_params(l, w->be, wbuf + off);
        if (mbuf && l->m) w->be->i->download(w->be, mbuf + off, l->m, l->nparams * sizeof(float));
        else if (mbuf) memset(mbuf + off, 0, l->nparams * sizeof(float));
        if (vbuf && l->v) w->be->i->download(w->be, vbuf + off, l->v, l->nparams * sizeof(float));
        else if (vbuf) memset(vbuf + off, 0, l->nparams * sizeof(float));
        off += l->nparams;
    }
    return w->be->i->sync(w->be, &w->err);
}

/* The inverse of mp_train_pack_params: host buffers into stage v's layers
 * (with mbuf: the Adam moments too, allocated where there are none yet). */
static mp_status unpack_params(mp_train_worker *w, mp_train_stage *v, const float *wbuf, const float *mbuf,
                               const float *vbuf)
{
    size_t off = 0;
    for (int i = 0; i < v->net.count; i++) {
        mp_layer *l = &v->net.layers[i];
        if (!l->nparams) continue;
        mp_layer_set_params(l, w->be, wbuf + off);
        if (mbuf) {
            size_t bytes = l->nparams * sizeof(float);
            if (!l->m) l->m = w->be->i->alloc(w->be, bytes);
            if (!l->v) l->v = w->be->i->alloc(w->be, bytes);
            if (!l->m || !l->v) return mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory for Adam moments", v->s);
            w->be->i->upload(w->be, l->m, mbuf + off, bytes);
            w->be->i->upload(w->be, l->v, vbuf + off, bytes);
        }
        off += l->nparams;
    }
    return w->be->i->sync(w->be, &w->err);
}

mp_status mp_train_checkpoint(mp_train_worker *w, long long step, int save)
{
    mp_train_run *r = w->r;
    int adam = r->c->optimizer == MP_OPT_ADAM;
    mp_status st = MP_OK;
    for (int k = 0; k < w->nst && st == MP_OK; k++) {
        mp_train_stage *v = &w->st[k];
        size_t n = v->nparams;
        float *wb = malloc((n ? n : 1) * sizeof(float));
        float *mb = adam ? malloc((n ? n : 1) * sizeof(float)) : NULL;
        float *vb = adam ? malloc((n ? n : 1) * sizeof(float)) : NULL;
        if (!wb || (adam && (!mb || !vb))) st = mp_error_set(&w->err, MP_ERR_NOMEM, "stage %d: out of memory", v->s);
        else if (save) {
            st = mp_train_pack_params(w, v, wb, mb, vb);
            if (st == MP_OK)
                st = mp_checkpoint_write(r->c->checkpoint_dir, v->s, step, v->first, v->last, wb, mb, vb, n, &w->err);
        } else {
            st = mp_checkpoint_read(r->c->checkpoint_dir, v->s, step, v->first, v->last, wb, mb, vb, n, &w->err);
            if (st == MP_OK) st = unpack_params(w, v, wb, mb, vb);
        }
        free(wb);
        free(mb);
        free(vb);
    }
    return st;
}

mp_status mp_train_hash_stage(mp_train_worker *w, mp_train_stage *v, mp_sha256 *h)
{
    float *buf = malloc((v->nparams ? v->nparams : 1) * sizeof(float));
    if (!buf) return mp_error_set(&w->err, MP_ERR_NOMEM, "out of memory for the checksum");
    mp_status st = mp_train_pack_params(w, v, buf, NULL, NULL);
    if (st == MP_OK) mp_sha256_update(h, buf, v->nparams * sizeof(float));
    free(buf);
    return st;
}
