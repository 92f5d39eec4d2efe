#ifndef GATEHOUSE_CHIREDIS_SHIM_H
#define GATEHOUSE_CHIREDIS_SHIM_H

// Debian 12 ships hiredis 0.14.1: no redisConnectWithOptions, no RESP3, no TLS.
// Only the non-variadic (...Argv) entry points are used from Swift.
#include <hiredis/hiredis.h>

#endif
