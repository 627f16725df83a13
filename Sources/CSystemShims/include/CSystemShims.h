#ifndef C_SYSTEM_SHIMS_H
#define C_SYSTEM_SHIMS_H
/* Linux calls that Glibc's Swift module hides behind _GNU_SOURCE. */
int CSystemShims_syncfs(int fd);
/* Starts writeback of a file's dirty pages without waiting (sync_file_range WRITE). */
int CSystemShims_start_writeback(int fd);
/* Allocates blocks for [offset, offset+length) and extends the file (fallocate mode 0). */
int CSystemShims_fallocate(int fd, long long offset, long long length);
/* Makes this process the reaper of its orphaned descendants (prctl is variadic). */
int CSystemShims_set_child_subreaper(void);
#endif
