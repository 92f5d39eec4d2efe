#ifndef GATEHOUSE_CLIBFUZZER_SHIM_H
#define GATEHOUSE_CLIBFUZZER_SHIM_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, in libclang_rt.fuzzer (linked by -sanitize=fuzzer). SwiftPM links an
// executable's entry point as `main` itself, so libFuzzer's own `main` is never used; the
// program's main calls this instead, with the same effect.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
