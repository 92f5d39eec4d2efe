#ifndef GATEHOUSE_CMALLOC_SHIM_H
#define GATEHOUSE_CMALLOC_SHIM_H
// glibc's malloc_trim(3), for a node returning freed memory (Glibc's Swift module does not include <malloc.h>).
#include <malloc.h>
#endif
