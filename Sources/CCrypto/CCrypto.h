#ifndef C_CRYPTO_SHIM_H
#define C_CRYPTO_SHIM_H
/* Needs libssl-dev. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/md5.h>
#endif
