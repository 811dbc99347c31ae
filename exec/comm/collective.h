/* collective.h — the all-reduce of data parallelism, written once on top of a
 * transport's point-to-point send/recv: a ring (reduce-scatter, then
 * all-gather) whose chunks are local to the vector reduced, so that the order
 * in which each element is summed depends only on the ring's size and the
 * element's index in the vector, never on who else sends what or when.
 * defines: mp_coll_io, mp_coll_io_host, mp_coll_chunk, mp_coll_allreduce
 *
 * The ring: members ring[0..n-1] (transport positions), `me` the caller's
 * index in it. The vector (len floats) is split into n chunks by index:
 * chunk c is [c*len/n, (c+1)*len/n). Reduce-scatter, steps t = 0..n-2:
 * member j sends chunk (j-t) mod n to member j+1 and adds the chunk
 * (j-t-1) mod n it receives from member j-1 into its own copy. Afterwards
 * member j holds the full sum of chunk (j+1) mod n, computed as
 * x[c+n-1] + (... + (x[c+1] + x[c])) with x[i] member i mod n's values: a
 * fixed order. All-gather, steps t = 0..n-2: member j sends chunk
 * (j+1-t) mod n to j+1 and stores the chunk (j-t) mod n it receives. Every
 * member ends with bitwise the same vector, and a run with the same n gives
 * bitwise the same sums. 2(n-1) messages of at most ceil(len/n) floats each
 * leave every member.
 *
 * Messages carry MP_TAG(MP_TAG_ALLRED, id, t) with t = 0..2n-3; the
 * transport's per-(source, tag) FIFO order keeps consecutive calls with the
 * same id apart. Every wait is the io's, bounded by its timeout. */
#ifndef MP_COLLECTIVE_H
#define MP_COLLECTIVE_H

#include <stddef.h>
#include "mp_status.h"
#include "transport.h"

/* How the ring moves and adds floats: host memory through a transport
 * (mp_coll_io_host), or a caller's memory (e.g. a GPU staged through host
 * buffers). Each returns MP_OK or a status with the cause in err. */
typedef struct {
    void *ctx;
    /* n floats at buf to ring member `dst` (a transport position). */
    mp_status (*send)(void *ctx, int dst, int tag, const float *buf, size_t n, mp_error *err);
    /* n floats from position `src` into buf. */
    mp_status (*recv)(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err);
    /* y[i] = y[i] + x[i] for i < n (NULL: a host loop). */
    mp_status (*add)(void *ctx, float *y, const float *x, size_t n, mp_error *err);
    /* Optional (NULL: recv into scratch, then add): n floats from `src`
     * added into buf, buf[i] = buf[i] + msg[i] (the transport's recv_add). */
    mp_status (*recv_add)(void *ctx, int src, int tag, float *buf, size_t n, mp_error *err);
} mp_coll_io;

/* Host state for mp_coll_io_host: transport t, the caller's position self,
 * every wait bounded by timeout_s. */
typedef struct {
    mp_transport *t;
    int self;
    double timeout_s;
} mp_coll_host;

/* An io that moves host floats through h->t (h must outlive the io); it
 * adds received chunks in place when the transport has recv_add. */
mp_coll_io mp_coll_io_host(mp_coll_host *h);

/* Chunk c of n of a len-float vector: *lo = c*len/n, *hi = (c+1)*len/n. */
void mp_coll_chunk(size_t len, int n, int c, size_t *lo, size_t *hi);

/* Sums data[0..len-1] over the n ring members in place (see above); scratch
 * holds at least ceil(len/n) floats of the io's memory. n = 1 returns at
 * once. id (0..1023) tells concurrent vectors apart (e.g. the stage).
 * MP_ERR_INTERNAL on a bad ring; the io's status otherwise. */
mp_status mp_coll_allreduce(const mp_coll_io *io, const int *ring, int n, int me, int id, float *data, size_t len,
                            float *scratch, mp_error *err);

#endif
