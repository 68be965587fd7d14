// The C interface between drcnn_dist (src/dist/communicator.cpp) and its transport plugins,
// libdrcnn_dist_mpi.so (src/dist/mpi_backend.cpp, OpenMPI) and libdrcnn_dist_nccl.so
// (src/dist/nccl_backend.cpp, NCCL). The plugins are loaded with dlopen only when a launcher's
// environment is detected (docs/distributed.md), so a process started without one needs neither
// libmpi nor libnccl. Plain C types only: a plugin links no drcnn library (no second copy of the
// allocators or any other state) and works on raw buffers.
//
// Every collective is nonblocking: it returns a request that test() drives; the host side
// (Communicator) polls it against a deadline, so a peer that died or hangs ends in an error
// within the timeout instead of a silent hang.
#pragma once
#include <cstddef>
#include <cstdint>

extern "C" {

#define DRCNN_DIST_ABI_VERSION 1

/// Element types a plugin reduces. F16/BF16 only in the NCCL plugin (the MPI path converts).
enum drcnn_dist_dtype { DRCNN_DIST_F32 = 0, DRCNN_DIST_F64, DRCNN_DIST_I32, DRCNN_DIST_I64, DRCNN_DIST_U8,
                        DRCNN_DIST_F16, DRCNN_DIST_BF16 };
/// SUM for numbers; MAX on U8 0/1 values is the logical OR of a bool tensor.
enum drcnn_dist_op { DRCNN_DIST_SUM = 0, DRCNN_DIST_MAX };

/// Return codes: 0 success; otherwise last_error() says what failed.
struct drcnn_dist_backend {
  int abi_version;
  int rank, size, local_rank, local_size;
  void* self;
  /// In place over `count` elements of `buf`. `stream`: the cudaStream_t the data was produced
  /// on (NCCL; the plugin orders its own communication stream after it), ignored by MPI.
  int (*all_reduce)(void* self, void* buf, uint64_t count, int dtype, int op, void* stream, void** request);
  int (*broadcast)(void* self, void* buf, uint64_t bytes, int root, void* stream, void** request);
  /// Rank r contributes counts[r] bytes (`send`); `recv` receives every rank's bytes in rank
  /// order (sum of counts). MPI only (NULL in the NCCL plugin).
  int (*all_gather_v)(void* self, const void* send, void* recv, const uint64_t* counts, void** request);
  int (*barrier)(void* self, void** request);
  /// Drives `request`; *done = 1 when it completed (the request is then released). `stream`
  /// (NCCL): made to wait for the completed collective.
  int (*test)(void* self, void* request, void* stream, int* done);
  const char* (*last_error)(void* self);
  /// Ends every rank of the job now (MPI_Abort / ncclCommAbort). Does not return for MPI.
  void (*abort)(void* self, int code);
  /// Orderly shutdown (MPI_Finalize / ncclCommDestroy); nothing may be pending.
  void (*finalize)(void* self);
};

/// libdrcnn_dist_mpi.so: initialises MPI (MPI_THREAD_FUNNELED: only the thread that trains
/// calls it), sets MPI_ERRORS_RETURN on its communicator. Returns 0 or writes an error.
typedef int (*drcnn_dist_mpi_open_fn)(drcnn_dist_backend* out, char* error, size_t error_size);
/// libdrcnn_dist_nccl.so: a 128-byte ncclUniqueId (rank 0 makes it, MPI carries it), then the
/// communicator of `size` ranks on CUDA device `device`.
typedef int (*drcnn_dist_nccl_unique_id_fn)(void* id128, char* error, size_t error_size);
typedef int (*drcnn_dist_nccl_open_fn)(drcnn_dist_backend* out, const void* id128, int rank, int size, int device,
                                       char* error, size_t error_size);
}
