#ifndef GATEHOUSE_CEPOLL_SHIM_H
#define GATEHOUSE_CEPOLL_SHIM_H
// epoll(7) for `gatehouse load`'s event loop (Glibc's Swift module does not include it).
#include <sys/epoll.h>
#endif
