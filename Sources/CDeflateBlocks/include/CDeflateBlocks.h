#ifndef C_DEFLATE_BLOCKS_H
#define C_DEFLATE_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/// Bytes of scratch memory `deflate_find_final_block` needs (its decoding tables).
size_t deflate_blocks_workspace_size(void);

/// Walks the blocks of the raw DEFLATE stream `data[0..<count]` (RFC 1951) without producing
/// output, and reports where its final block starts (`final_header_bit`: the bit that holds
/// BFINAL) and where that block ends (`end_bit`), both counted LSB-first from data[0].
/// `workspace` holds deflate_blocks_workspace_size() bytes. Returns 0 on success, -1 when
/// the stream is malformed or does not end within its last byte.
int deflate_find_final_block(void *workspace, const uint8_t *data, size_t count,
                             size_t *final_header_bit, size_t *end_bit);

#endif
