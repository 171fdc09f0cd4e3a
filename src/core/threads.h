// cogumi/core: how many threads a ggml computation uses when its option says 0 ("all cores").
//
// ggml's CPU threads meet at a spinning barrier after every operation. When more of them run
// than there are cores (two test processes of 2 threads on a 2-core machine, a server next to a
// training job) each barrier can wait out a scheduler time slice, and decoding slows 10-100x.
// COGUMI_THREADS caps the default for every process that inherits it (the test suite sets 1:
// ctest -j2 then runs two one-thread tests on two cores); an explicit --threads still wins.
#pragma once

namespace cogumi {

// `requested` when > 0; else COGUMI_THREADS when set (1..4096; anything else throws Error naming
// the variable); else the machine's hardware threads (at least 1).
int compute_threads(int requested = 0);

}  // namespace cogumi
