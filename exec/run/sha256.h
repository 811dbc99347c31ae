/* sha256.h — SHA-256 (FIPS 180-4), for weights checksums.
 * defines: mp_sha256, mp_sha256_init, mp_sha256_update, mp_sha256_final,
 *          mp_sha256_hex */
#ifndef MP_SHA256_H
#define MP_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t nbuf;
} mp_sha256;

void mp_sha256_init(mp_sha256 *s);
/* Hashes n more bytes. */
void mp_sha256_update(mp_sha256 *s, const void *data, size_t n);
/* Writes the 32-byte digest; s must be re-initialised before reuse. */
void mp_sha256_final(mp_sha256 *s, unsigned char out[32]);
/* 64 lowercase hex digits + NUL into hex[65]; returns hex. */
char *mp_sha256_hex(const unsigned char digest[32], char hex[65]);

#endif
