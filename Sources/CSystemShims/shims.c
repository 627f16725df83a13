#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include "CSystemShims.h"

int CSystemShims_syncfs(int fd) { return syncfs(fd); }

int CSystemShims_statfs(const char *path, long long *type, long long *available) {
    struct statfs s;
    if (statfs(path, &s) != 0) return -1;
    *type = (long long)s.f_type;
    *available = (long long)s.f_bavail * (long long)s.f_bsize;
    return 0;
}

int CSystemShims_start_writeback(int fd) { return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); }

int CSystemShims_fallocate(int fd, long long offset, long long length) { return fallocate(fd, 0, (off_t)offset, (off_t)length); }

int CSystemShims_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

long CSystemShims_getdents64(int fd, void *buf, unsigned long count) { return (long)getdents64(fd, buf, count); }

int CSystemShims_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1); }

/* Reading a file dirties its inode to record the access time (relatime: at the first read
   after each change, and once a day): a backup or restore would write back an inode per file
   read, and change what `find -atime` says of the whisper tree. Set once O_NOATIME is refused
   (a file of another user); threads may race to set it, harmlessly. */
static atomic_int noatime_refused;

int CSystemShims_open_reading(const char *path, int flags) {
    if (!atomic_load_explicit(&noatime_refused, memory_order_relaxed)) {
        int fd = open(path, flags | O_NOATIME);
        if (fd >= 0 || errno != EPERM) return fd;
        atomic_store_explicit(&noatime_refused, 1, memory_order_relaxed);
    }
    return open(path, flags);
}
