#ifndef C_SYSTEM_SHIMS_H
#define C_SYSTEM_SHIMS_H
/* Linux calls that Glibc's Swift module hides behind _GNU_SOURCE. */
int CSystemShims_syncfs(int fd);
int CSystemShims_statfs(const char *path, long long *type, long long *available);
/* Starts writeback of a file's dirty pages without waiting (sync_file_range WRITE). */
int CSystemShims_start_writeback(int fd);
/* Allocates blocks for [offset, offset+length) and extends the file (fallocate mode 0). */
int CSystemShims_fallocate(int fd, long long offset, long long length);
/* Renames `from` to `to` unless `to` exists (renameat2 RENAME_NOREPLACE): -1 with EEXIST
   then; EINVAL where the filesystem cannot (NFS). */
int CSystemShims_rename_noreplace(const char *from, const char *to);
/* Reads directory entries (struct linux_dirent64) into buf: bytes read, 0 at the end. */
long CSystemShims_getdents64(int fd, void *buf, unsigned long count);
/* open(2) for reading, with O_NOATIME while the kernel allows it to this process (the
   file's owner, or CAP_FOWNER); after the first EPERM, without it. */
int CSystemShims_open_reading(const char *path, int flags);
/* Makes this process the reaper of its orphaned descendants (prctl is variadic). */
int CSystemShims_set_child_subreaper(void);
#endif
