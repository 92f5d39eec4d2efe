#ifndef GATEHOUSE_BENCH_MALLOC_COUNTER_H
#define GATEHOUSE_BENCH_MALLOC_COUNTER_H

#include <stdint.h>

/// Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc)
/// seen by this process while counting was enabled.
uint64_t gh_malloc_count(void);

/// `free` calls with a non-NULL pointer seen while counting was enabled.
uint64_t gh_free_count(void);

/// Turns counting on (1) or off (0). Off by default, so that timed loops pay nothing but one
/// relaxed load per allocation: the counters are read only in the allocation measurements.
void gh_malloc_counting(int enabled);

#endif
