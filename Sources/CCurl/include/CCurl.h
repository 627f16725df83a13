#ifndef C_CURL_SHIM_H
#define C_CURL_SHIM_H
/* libcurl, loaded with dlopen(3) on first use (ccurl.c): a tool that never talks HTTP (every
   file:// run) does not pay the ~4 ms that loading libcurl and its two dozen libraries adds to
   each process start. Builds against libcurl4-openssl-dev's header for the types and constants;
   curl_easy_setopt/getinfo are variadic, hence the typed shims. */
#include <curl/curl.h>

/* Loads libcurl.so.4 once; 0 on success, else -1 with the reason in `error`. */
int CCurl_load(char *error, size_t size);

CURLcode CCurl_global_init(long flags);
CURL *CCurl_easy_init(void);
void CCurl_easy_cleanup(CURL *h);
void CCurl_easy_reset(CURL *h);
CURLcode CCurl_easy_perform(CURL *h);
const char *CCurl_easy_strerror(CURLcode code);
struct curl_slist *CCurl_slist_append(struct curl_slist *list, const char *s);
void CCurl_slist_free_all(struct curl_slist *list);

CURLcode CCurl_easy_setopt_long(CURL *h, CURLoption o, long v);
CURLcode CCurl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v);
CURLcode CCurl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode CCurl_easy_setopt_write(CURL *h, size_t (*f)(char *, size_t, size_t, void *));
CURLcode CCurl_easy_setopt_read(CURL *h, size_t (*f)(char *, size_t, size_t, void *));
CURLcode CCurl_easy_setopt_header(CURL *h, size_t (*f)(char *, size_t, size_t, void *));
CURLcode CCurl_easy_setopt_seek(CURL *h, int (*f)(void *, curl_off_t, int));
CURLcode CCurl_easy_setopt_xferinfo(CURL *h, int (*f)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));
CURLcode CCurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v);
CURLcode CCurl_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v);

/* The multi interface: several transfers at once in one thread. */
CURLM *CCurl_multi_init(void);
void CCurl_multi_cleanup(CURLM *m);
CURLMcode CCurl_multi_add_handle(CURLM *m, CURL *h);
CURLMcode CCurl_multi_remove_handle(CURLM *m, CURL *h);
CURLMcode CCurl_multi_perform(CURLM *m, int *running);
/* Waits up to timeout_ms for activity on the multi handle's transfers. */
CURLMcode CCurl_multi_poll(CURLM *m, int timeout_ms);
const char *CCurl_multi_strerror(CURLMcode code);
/* The next transfer that ended (its result in `result`), or NULL when none is waiting. */
CURL *CCurl_multi_next_done(CURLM *m, CURLcode *result);

/* Values Swift cannot import as constants (macros built from expressions). */
static inline size_t CCurl_READFUNC_ABORT(void) { return CURL_READFUNC_ABORT; }
static inline int CCurl_SEEKFUNC_OK(void) { return CURL_SEEKFUNC_OK; }
static inline int CCurl_SEEKFUNC_FAIL(void) { return CURL_SEEKFUNC_FAIL; }
static inline long CCurl_GLOBAL_DEFAULT(void) { return CURL_GLOBAL_DEFAULT; }
static inline int CCurl_ERROR_SIZE(void) { return CURL_ERROR_SIZE; }
#endif
