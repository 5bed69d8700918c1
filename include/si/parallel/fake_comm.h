// FakeComm: the collectives in-process, N ranks as N threads sharing memory. Used to unit-test every
// layout without mpirun; bit-identical to MpiComm (same reduction order, comm.h).
//
// Each collective is two barrier phases: every rank publishes its buffer pointers, waits, copies/sums what
// it needs from the others' buffers, and waits again so no buffer is released while another rank reads
// it. Every rank also publishes (kind, count, type, root); a mismatch fails the call on every rank with a
// message naming both sides. A rank that does not arrive within the timeout (default 30 s) makes the others
// fail with DeadlineExceeded-style kInternal errors naming the group, instead of hanging.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "si/parallel/comm.h"
#include "si/parallel/mesh.h"

namespace si {

struct FakeMeshOptions {
  std::chrono::milliseconds timeout{30000};
};

// Builds the meshes of all ranks of `shape` sharing one set of fake groups, runs fn(mesh) on one thread per
// rank, joins, and returns the first non-OK status (by rank) or OK. fn may use gtest EXPECTs (thread-safe).
Status RunFakeMesh(const MeshShape& shape, const std::function<Status(Mesh&)>& fn,
                   const FakeMeshOptions& options = {});

// The meshes without threads (the caller runs them on its own threads); index = world rank.
std::vector<std::unique_ptr<Mesh>> MakeFakeMeshes(const MeshShape& shape,
                                                  const FakeMeshOptions& options = {});

}  // namespace si
