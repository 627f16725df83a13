#ifndef C_DEFLATE_SHIM_H
#define C_DEFLATE_SHIM_H
/* Needs libdeflate-dev. */
#include <libdeflate.h>
#endif
