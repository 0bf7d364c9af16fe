/*
 * Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3" (SC 2011), and the uniform of
 * the draw built on it (docs/semantics.md): a pure function of (seed, offset), so a row's draw
 * never depends on its batch, its position there or the thread that runs it.
 */
#include "tokenpick.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void tp_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

double tp_uniform(uint64_t seed, uint64_t offset) { return tp_uniform_at(seed, offset, 0); }

double tp_uniform_at(uint64_t seed, uint64_t offset, uint32_t index)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)offset, (uint32_t)(offset >> 32), index, 0u};
    uint32_t out[4];
    tp_philox4x32_10(ctr, key, out);
    const uint64_t bits = (uint64_t)out[0] | ((uint64_t)out[1] << 32);
    return (double)(bits >> 11) * (1.0 / 9007199254740992.0); /* 2**-53 */
}
