// A DEFLATE block walker: decodes symbols only as far as needed to find block boundaries.
// Used to splice a compressor's self-contained stream into a longer one (the final block's
// BFINAL bit is cleared and the next block starts at its end).
#include "CDeflateBlocks.h"
#include <string.h>

#define MAX_BITS 15

typedef struct {
    const uint8_t *data;
    size_t count;
    size_t bit;         // next bit to read
} reader;

// Up to 32 bits from the current position, without consuming them; zeros past the end.
static inline uint32_t peek(const reader *r, unsigned n) {
    size_t byte = r->bit >> 3;
    unsigned shift = r->bit & 7;
    uint64_t v = 0;
    if (byte + 8 <= r->count) {
        memcpy(&v, r->data + byte, 8);      // little-endian load (x86-64, aarch64)
    } else {
        for (size_t i = 0; byte + i < r->count && i < 8; i++) v |= (uint64_t)r->data[byte + i] << (8 * i);
    }
    v >>= shift;
    return n == 32 ? (uint32_t)v : (uint32_t)(v & ((1u << n) - 1));
}

static inline int take(reader *r, unsigned n, uint32_t *out) {
    if (r->bit + n > (size_t)r->count * 8) return -1;
    *out = n ? peek(r, n) : 0;
    r->bit += n;
    return 0;
}

// A decoding table: `entry` is indexed by the next FAST_BITS stream bits and holds
// (symbol << 4) | code length for codes of up to FAST_BITS bits, 0 otherwise; longer codes
// are decoded canonically from `count` and `symbol` (sorted by length, then value).
#define FAST_BITS 10
typedef struct {
    uint16_t entry[1u << FAST_BITS];
    uint16_t count[MAX_BITS + 1];
    uint16_t symbol[288];
} table;

static unsigned reverse(unsigned code, unsigned len) {
    unsigned r = 0;
    for (unsigned i = 0; i < len; i++) { r = (r << 1) | (code & 1); code >>= 1; }
    return r;
}

// Canonical Huffman codes from code lengths (RFC 1951 3.2.2). Over-subscribed sets fail;
// incomplete sets are allowed (a single distance code is legal).
static int build(table *t, const uint8_t *lengths, unsigned n) {
    unsigned next[MAX_BITS + 1], offset[MAX_BITS + 1];
    memset(t->count, 0, sizeof t->count);
    for (unsigned s = 0; s < n; s++) t->count[lengths[s]]++;
    t->count[0] = 0;
    int left = 1;
    for (unsigned l = 1; l <= MAX_BITS; l++) {
        left <<= 1;
        left -= (int)t->count[l];
        if (left < 0) return -1;
    }
    // next[l]: the first code of length l (RFC 1951's next_code); offset[l]: where the
    // symbols of length l start in `symbol`.
    unsigned code = 0;
    offset[1] = 0;
    for (unsigned l = 1; l <= MAX_BITS; l++) {
        code = (code + t->count[l - 1]) << 1;
        next[l] = code;
        if (l > 1) offset[l] = offset[l - 1] + t->count[l - 1];
    }
    memset(t->entry, 0, sizeof t->entry);
    for (unsigned s = 0; s < n; s++) {
        unsigned l = lengths[s];
        if (!l) continue;
        t->symbol[offset[l]++] = (uint16_t)s;
        unsigned c = next[l]++;
        if (l > FAST_BITS) continue;
        unsigned r = reverse(c, l);
        uint16_t e = (uint16_t)((s << 4) | l);
        for (unsigned i = r; i < (1u << FAST_BITS); i += 1u << l) t->entry[i] = e;
    }
    return 0;
}

// A code longer than FAST_BITS, one bit at a time (as zlib's puff.c does).
static int decode_slow(reader *r, const table *t, unsigned *sym) {
    int code = 0, first = 0, index = 0;
    size_t bit = r->bit;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        if (bit >= (size_t)r->count * 8) return -1;
        code |= (r->data[bit >> 3] >> (bit & 7)) & 1;
        bit++;
        int count = t->count[len];
        if (code - count < first) {
            r->bit = bit;
            *sym = t->symbol[index + (code - first)];
            return 0;
        }
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return -1;
}

static inline int decode(reader *r, const table *t, unsigned *sym) {
    uint16_t e = t->entry[peek(r, FAST_BITS)];
    unsigned len = e & 15;
    if (!len) return decode_slow(r, t, sym);
    if (r->bit + len > (size_t)r->count * 8) return -1;
    r->bit += len;
    *sym = e >> 4;
    return 0;
}

static int fixed_tables(table *lit, table *dist) {
    uint8_t l[288], d[30];
    unsigned s = 0;
    for (; s < 144; s++) l[s] = 8;
    for (; s < 256; s++) l[s] = 9;
    for (; s < 280; s++) l[s] = 7;
    for (; s < 288; s++) l[s] = 8;
    for (s = 0; s < 30; s++) d[s] = 5;
    return build(lit, l, 288) || build(dist, d, 30) ? -1 : 0;
}

static int dynamic_tables(reader *r, table *lit, table *dist, table *scratch) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint32_t hlit, hdist, hclen, v;
    if (take(r, 5, &hlit) || take(r, 5, &hdist) || take(r, 4, &hclen)) return -1;
    hlit += 257; hdist += 1; hclen += 4;
    if (hlit > 286 || hdist > 30) return -1;
    uint8_t cl[19] = {0};
    for (unsigned i = 0; i < hclen; i++) { if (take(r, 3, &v)) return -1; cl[order[i]] = (uint8_t)v; }
    if (build(scratch, cl, 19)) return -1;
    uint8_t lengths[286 + 30];
    unsigned n = 0;
    while (n < hlit + hdist) {
        unsigned sym;
        if (decode(r, scratch, &sym)) return -1;
        if (sym < 16) { lengths[n++] = (uint8_t)sym; continue; }
        unsigned repeat; uint8_t value = 0;
        if (sym == 16) {
            if (n == 0 || take(r, 2, &v)) return -1;
            value = lengths[n - 1]; repeat = 3 + v;
        } else if (sym == 17) {
            if (take(r, 3, &v)) return -1;
            repeat = 3 + v;
        } else {
            if (take(r, 7, &v)) return -1;
            repeat = 11 + v;
        }
        if (n + repeat > hlit + hdist) return -1;
        while (repeat--) lengths[n++] = value;
    }
    if (lengths[256] == 0) return -1;
    return build(lit, lengths, hlit) || build(dist, lengths + hlit, hdist) ? -1 : 0;
}

static int skip_symbols(reader *r, const table *lit, const table *dist) {
    for (;;) {
        unsigned sym;
        uint32_t v;
        if (decode(r, lit, &sym)) return -1;
        if (sym < 256) continue;
        if (sym == 256) return 0;
        if (sym > 285) return -1;
        unsigned extra = (sym >= 265 && sym < 285) ? (sym - 261) / 4 : 0;
        if (take(r, extra, &v)) return -1;
        unsigned d;
        if (decode(r, dist, &d) || d > 29) return -1;
        unsigned dextra = d < 4 ? 0 : d / 2 - 1;
        if (take(r, dextra, &v)) return -1;
    }
}

struct deflate_blocks_workspace { table lit, dist, scratch; };

size_t deflate_blocks_workspace_size(void) { return sizeof(struct deflate_blocks_workspace); }

int deflate_find_final_block(void *workspace, const uint8_t *data, size_t count,
                             size_t *final_header_bit, size_t *end_bit) {
    struct deflate_blocks_workspace *w = workspace;
    reader r = {data, count, 0};
    for (;;) {
        size_t header = r.bit;
        uint32_t bfinal, btype;
        if (take(&r, 1, &bfinal) || take(&r, 2, &btype)) return -1;
        if (btype == 0) {
            r.bit = (r.bit + 7) & ~(size_t)7;
            uint32_t len, nlen;
            if (take(&r, 16, &len) || take(&r, 16, &nlen) || (len ^ 0xffff) != nlen) return -1;
            if (r.bit + (size_t)len * 8 > count * 8) return -1;
            r.bit += (size_t)len * 8;
        } else if (btype == 1) {
            if (fixed_tables(&w->lit, &w->dist) || skip_symbols(&r, &w->lit, &w->dist)) return -1;
        } else if (btype == 2) {
            if (dynamic_tables(&r, &w->lit, &w->dist, &w->scratch) || skip_symbols(&r, &w->lit, &w->dist)) return -1;
        } else {
            return -1;
        }
        if (bfinal) {
            // The stream must end in the byte that holds its last bit.
            if ((r.bit + 7) / 8 != count) return -1;
            *final_header_bit = header;
            *end_bit = r.bit;
            return 0;
        }
    }
}
