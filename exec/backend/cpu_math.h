/* cpu_math.h — branchless float exp and tanh for the CPU backend's loops.
 * defines: mp_cpu_expf, mp_cpu_tanhf, MP_CPU_CLONES
 *
 * Plain arithmetic (no calls, no branches), so loops over them vectorise and
 * give bitwise the same result on every run and in every position of a loop
 * (no FMA contraction under -std=c11). Accuracy: mp_cpu_expf within 2 ulp of
 * expf on [-87.3, 88.3] (inputs outside are clamped there; NaN gives NaN),
 * mp_cpu_tanhf within 2e-7 absolute of tanhf. */
#ifndef MP_CPU_MATH_H
#define MP_CPU_MATH_H

#include <stdint.h>
#include <string.h>

/* On x86-64 with GCC: the function compiled for AVX-512, AVX2 and the
 * baseline, the best picked at load time. No FMA contraction (-std=c11), so
 * every version computes bitwise the same values. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MP_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef MP_CPU_CLONES
#define MP_CPU_CLONES
#endif

/* e^x: x = k ln2 + r, |r| <= ln2/2, e^r by Cephes' degree-6 polynomial, 2^k
 * through the exponent bits. */
static inline float mp_cpu_expf(float x0)
{
    float x = x0 > -87.3f ? x0 : -87.3f;   /* NaN goes to -87.3 here (the cast below stays defined)... */
    x = x < 88.3f ? x : 88.3f;
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x0 == x0 ? y * scale : x0;   /* ...and comes back out as NaN */
}

/* tanh z = 1 - 2 / (e^{2z} + 1); saturates to +-1 for large |z|. */
static inline float mp_cpu_tanhf(float z)
{
    return 1.0f - 2.0f / (mp_cpu_expf(2.0f * z) + 1.0f);
}

#endif
