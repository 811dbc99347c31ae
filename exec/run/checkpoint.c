/* checkpoint.c — see checkpoint.h. Host byte order; the checksum is SHA-256. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

static const char MAGIC[8] = { 'M', 'P', 'C', 'K', 'P', 'T', '1', 0 };

typedef struct {
    char magic[8];
    int32_t stage, first, last, has_moments;
    int64_t step;
    uint64_t n;
} header;

static void step_path(char *buf, size_t len, const char *dir, int stage, long long step)
{
    snprintf(buf, len, "%s/stage-%d.step-%lld.ckpt", dir, stage, step);
}

static int write_all(FILE *f, mp_sha256 *h, const void *p, size_t bytes)
{
    mp_sha256_update(h, p, bytes);
    return fwrite(p, 1, bytes, f) == bytes;
}

/* temp + fsync + rename */
static mp_status commit_file(FILE *f, const char *tmp, const char *path, mp_error *err)
{
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return mp_error_set(err, MP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return MP_OK;
}

mp_status mp_checkpoint_write(const char *dir, int stage, long long step, int first, int last,
                              const float *params, const float *m, const float *v, size_t n,
                              mp_error *err)
{
    char path[4096], tmp[4200];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return mp_error_set(err, MP_ERR_IO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    step_path(path, sizeof path, dir, stage, step);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    header hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, MAGIC, sizeof MAGIC);
    hd.stage = stage; hd.first = first; hd.last = last;
    hd.has_moments = m && v;
    hd.step = step;
    hd.n = n;
    mp_sha256 h;
    mp_sha256_init(&h);
    int ok = write_all(f, &h, &hd, sizeof hd) && write_all(f, &h, params, n * sizeof(float));
    if (ok && hd.has_moments) ok = write_all(f, &h, m, n * sizeof(float)) && write_all(f, &h, v, n * sizeof(float));
    unsigned char dg[32];
    mp_sha256_final(&h, dg);
    ok = ok && fwrite(dg, 1, 32, f) == 32;
    if (!ok) { fclose(f); unlink(tmp); return mp_error_set(err, MP_ERR_IO, "%s: write failed: %s", tmp, strerror(errno)); }
    return commit_file(f, tmp, path, err);
}

static int read_all(FILE *f, mp_sha256 *h, void *p, size_t bytes)
{
    if (fread(p, 1, bytes, f) != bytes) return 0;
    mp_sha256_update(h, p, bytes);
    return 1;
}

mp_status mp_checkpoint_read(const char *dir, int stage, long long step, int first, int last,
                             float *params, float *m, float *v, size_t n, mp_error *err)
{
    char path[4096];
    step_path(path, sizeof path, dir, stage, step);
    FILE *f = fopen(path, "rb");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    header hd;
    mp_sha256 h;
    mp_sha256_init(&h);
    mp_status st = MP_OK;
    if (!read_all(f, &h, &hd, sizeof hd) || memcmp(hd.magic, MAGIC, sizeof MAGIC) != 0)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: not an mprun checkpoint", path);
    else if (hd.stage != stage || hd.first != first || hd.last != last || hd.step != step)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: holds stage %d layers %d..%d step %lld, but this plan's stage %d has layers %d..%d (step %lld)",
                          path, (int)hd.stage, (int)hd.first, (int)hd.last, (long long)hd.step, stage, first, last, step);
    else if (hd.n != n)
        st = mp_error_set(err, MP_ERR_INPUT, "%s: holds %llu parameters, stage %d has %zu", path,
                          (unsigned long long)hd.n, stage, n);
    else if ((m && v) != (hd.has_moments != 0))
        st = mp_error_set(err, MP_ERR_INPUT, "%s: written with a different optimizer (%s moments)", path,
                          hd.has_moments ? "has Adam" : "no");
    if (st == MP_OK) {
        int ok = read_all(f, &h, params, n * sizeof(float));
        if (ok && hd.has_moments) ok = read_all(f, &h, m, n * sizeof(float)) && read_all(f, &h, v, n * sizeof(float));
        unsigned char want[32], got[32];
        mp_sha256_final(&h, want);
        if (!ok || fread(got, 1, 32, f) != 32)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: truncated", path);
        else if (memcmp(want, got, 32) != 0)
            st = mp_error_set(err, MP_ERR_INPUT, "%s: checksum mismatch (corrupted file)", path);
    }
    fclose(f);
    return st;
}

mp_status mp_checkpoint_commit(const char *dir, long long step, int num_stages, mp_error *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "step %lld\nstages %d\n", step, num_stages);
    mp_status st = commit_file(f, tmp, path, err);
    if (st != MP_OK) return st;
    DIR *d = opendir(dir);
    if (!d) return MP_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        int s;
        long long k;
        char tail[8];
        if (sscanf(e->d_name, "stage-%d.step-%lld.ck%2s", &s, &k, tail) == 3 && k < step) {
            char old[4400];
            snprintf(old, sizeof old, "%s/%s", dir, e->d_name);
            unlink(old);
        }
    }
    closedir(d);
    return MP_OK;
}

mp_status mp_checkpoint_latest(const char *dir, long long *step, int *num_stages, mp_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f) return mp_error_set(err, MP_ERR_IO, "%s: no checkpoint to resume from: %s", path, strerror(errno));
    int ok = fscanf(f, "step %lld stages %d", step, num_stages) == 2;
    fclose(f);
    if (!ok) return mp_error_set(err, MP_ERR_INPUT, "%s: malformed (expected \"step N\\nstages K\")", path);
    return MP_OK;
}
