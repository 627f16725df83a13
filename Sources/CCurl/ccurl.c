#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include "CCurl.h"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    const char *(*multi_strerror)(CURLMcode);
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void load(void) {
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "libcurl is not installed (libcurl4): %s", dlerror());
        return;
    }
#define SYM(field, name) \
    if (!(*(void **)&lib.field = dlsym(h, name))) { \
        snprintf(load_error, sizeof load_error, "libcurl.so.4 lacks %s", name); \
        lib.global_init = NULL; \
        return; \
    }
    SYM(easy_init, "curl_easy_init")
    SYM(easy_cleanup, "curl_easy_cleanup")
    SYM(easy_reset, "curl_easy_reset")
    SYM(easy_perform, "curl_easy_perform")
    SYM(easy_strerror, "curl_easy_strerror")
    SYM(slist_append, "curl_slist_append")
    SYM(slist_free_all, "curl_slist_free_all")
    SYM(easy_setopt, "curl_easy_setopt")
    SYM(easy_getinfo, "curl_easy_getinfo")
    SYM(multi_init, "curl_multi_init")
    SYM(multi_cleanup, "curl_multi_cleanup")
    SYM(multi_add_handle, "curl_multi_add_handle")
    SYM(multi_remove_handle, "curl_multi_remove_handle")
    SYM(multi_perform, "curl_multi_perform")
    SYM(multi_poll, "curl_multi_poll")
    SYM(multi_info_read, "curl_multi_info_read")
    SYM(multi_strerror, "curl_multi_strerror")
    SYM(global_init, "curl_global_init")   /* last: non-NULL means all are loaded */
#undef SYM
}

int CCurl_load(char *error, size_t size) {
    pthread_once(&once, load);
    if (lib.global_init) return 0;
    snprintf(error, size, "%s", load_error);
    return -1;
}

CURLcode CCurl_global_init(long flags) { return lib.global_init(flags); }
CURL *CCurl_easy_init(void) { return lib.easy_init(); }
void CCurl_easy_cleanup(CURL *h) { lib.easy_cleanup(h); }
void CCurl_easy_reset(CURL *h) { lib.easy_reset(h); }
CURLcode CCurl_easy_perform(CURL *h) { return lib.easy_perform(h); }
const char *CCurl_easy_strerror(CURLcode code) { return lib.easy_strerror(code); }
struct curl_slist *CCurl_slist_append(struct curl_slist *list, const char *s) { return lib.slist_append(list, s); }
void CCurl_slist_free_all(struct curl_slist *list) { lib.slist_free_all(list); }

CURLcode CCurl_easy_setopt_long(CURL *h, CURLoption o, long v) { return lib.easy_setopt(h, o, v); }
CURLcode CCurl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v) { return lib.easy_setopt(h, o, v); }
CURLcode CCurl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return lib.easy_setopt(h, o, v); }
CURLcode CCurl_easy_setopt_write(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return lib.easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
CURLcode CCurl_easy_setopt_read(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return lib.easy_setopt(h, CURLOPT_READFUNCTION, f); }
CURLcode CCurl_easy_setopt_header(CURL *h, size_t (*f)(char *, size_t, size_t, void *)) { return lib.easy_setopt(h, CURLOPT_HEADERFUNCTION, f); }
CURLcode CCurl_easy_setopt_seek(CURL *h, int (*f)(void *, curl_off_t, int)) { return lib.easy_setopt(h, CURLOPT_SEEKFUNCTION, f); }
CURLcode CCurl_easy_setopt_xferinfo(CURL *h, int (*f)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) { return lib.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }
CURLcode CCurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return lib.easy_getinfo(h, i, v); }
CURLcode CCurl_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return lib.easy_getinfo(h, i, v); }

CURLM *CCurl_multi_init(void) { return lib.multi_init(); }
void CCurl_multi_cleanup(CURLM *m) { lib.multi_cleanup(m); }
CURLMcode CCurl_multi_add_handle(CURLM *m, CURL *h) { return lib.multi_add_handle(m, h); }
CURLMcode CCurl_multi_remove_handle(CURLM *m, CURL *h) { return lib.multi_remove_handle(m, h); }
CURLMcode CCurl_multi_perform(CURLM *m, int *running) { return lib.multi_perform(m, running); }
CURLMcode CCurl_multi_poll(CURLM *m, int timeout_ms) { return lib.multi_poll(m, NULL, 0, timeout_ms, NULL); }
const char *CCurl_multi_strerror(CURLMcode code) { return lib.multi_strerror(code); }

CURL *CCurl_multi_next_done(CURLM *m, CURLcode *result) {
    int left = 0;
    CURLMsg *msg;
    while ((msg = lib.multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            *result = msg->data.result;
            return msg->easy_handle;
        }
    }
    return NULL;
}
