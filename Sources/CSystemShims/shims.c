#define _GNU_SOURCE
#include <unistd.h>
#include "CSystemShims.h"

int CSystemShims_syncfs(int fd) { return syncfs(fd); }
