#ifndef GATEHOUSE_BENCH_COATH_SHIM_H
#define GATEHOUSE_BENCH_COATH_SHIM_H

// liboath (OATH Toolkit), the reference for TOTPBench. pkg-config adds -I/usr/include/liboath;
// the prefixed path works with or without it.
#include <liboath/oath.h>

#endif
