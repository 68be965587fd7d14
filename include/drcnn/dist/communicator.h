// Communicator: the processes of a data-parallel run (rank, size, local rank) and the
// collectives training needs (all-reduce sum/mean, broadcast, all-gather of variable-length
// buffers, barrier), over MPI for CPU tensors and NCCL for CUDA tensors (docs/distributed.md).
//
// A process started without a launcher is rank 0 of 1 and every collective is the identity: it
// needs neither libmpi nor libnccl at run time. Under mpirun/mpiexec (detected from the
// launcher's environment: OMPI_COMM_WORLD_SIZE, PMIX_RANK with a size, PMI_SIZE) the MPI
// transport is loaded with dlopen from libdrcnn_dist_mpi.so, and init_gpu() loads the NCCL one
// (libdrcnn_dist_nccl.so, its unique id broadcast over MPI) for a run on a GPU.
//
// Failure: every collective is started nonblocking and waited for against a deadline
// (timeout_seconds(), default 300 s, DRCNN_DIST_TIMEOUT overrides it); a collective that does not
// complete in time, or that the transport reports as failed (MPI's error handler returns the
// error to us; NCCL's asynchronous error), throws DistError naming the collective, the rank
// and the time waited. The caller then calls abort(), which ends every rank of the job
// (MPI_Abort); drcnn_train does so for any error, so one rank that throws or dies stops the
// others within the timeout. Tests: tests/dist (ctest -L dist).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "drcnn/core/device.h"
#include "drcnn/core/error.h"
#include "drcnn/core/tensor.h"

namespace drcnn::dist {

enum class ReduceOp { Sum, Mean };

/// A collective that failed, or did not complete within the timeout (a peer died or hangs).
class DistError : public Error {
 public:
  using Error::Error;
};

class Communicator;

/// A started collective. Move-only; a Work destroyed while pending is waited for first (a
/// buffer must not be released under a running collective; that wait's error is dropped),
/// except while an exception unwinds the stack (the job is then about to be aborted).
class Work {
 public:
  Work() = default;
  Work(Work&&) noexcept;
  Work& operator=(Work&&) noexcept;
  ~Work();
  /// Drives the collective; true once it completed (and its result is in the tensor).
  bool test();
  /// Waits for completion until the communicator's deadline; throws DistError on failure or timeout.
  void wait();
  bool pending() const { return m_request != nullptr; }

 private:
  friend class Communicator;
  Communicator* m_comm = nullptr;
  const void* m_backend = nullptr;  // which transport (drcnn_dist_backend*)
  void* m_request = nullptr;
  void* m_stream = nullptr;         // CUDA: the caller's stream
  std::string m_what;
  double m_started = 0;             // steady-clock seconds
  Tensor m_keep;                    // the buffer, alive until completion
  std::function<void()> m_finish;   // after completion: / size for a mean, copy back
};

class Communicator {
 public:
  /// This process's world, created on first use from the environment (see the file comment).
  /// Throws drcnn::Error when a launcher is detected but the MPI plugin cannot be loaded or
  /// MPI cannot start (the message names the library and the launcher variable).
  static Communicator& world();
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return m_rank; }
  int size() const { return m_size; }
  /// Rank among the processes of this machine (which GPU to use), and their number.
  int local_rank() const { return m_local_rank; }
  int local_size() const { return m_local_size; }
  bool is_main() const { return m_rank == 0; }
  /// "single", "mpi" or "mpi+nccl".
  std::string backend() const;
  /// How the world was found: "none" or the launcher variable, e.g. "OMPI_COMM_WORLD_SIZE=2".
  const std::string& launcher() const { return m_launcher; }

  double timeout_seconds() const { return m_timeout; }
  /// Throws for a value that is not finite and > 0.
  void set_timeout(double seconds);

  /// Loads NCCL for CUDA tensors on `device` (the unique id made on rank 0 and broadcast over
  /// MPI). Nothing to do with one process. Throws when NCCL cannot be loaded or initialised.
  void init_gpu(Device device);
  bool has_gpu() const { return m_nccl != nullptr; }

  /// In place over a contiguous tensor of any dtype (bool: logical or). Mean: floating point
  /// only (sum, then divide by size()). CPU tensors go over MPI (float16/bfloat16 reduced in
  /// float32 and rounded back), CUDA tensors over NCCL. An empty tensor is a valid collective.
  Work all_reduce_async(Tensor tensor, ReduceOp op = ReduceOp::Sum, std::string what = "all_reduce");
  void all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum, const std::string& what = "all_reduce");
  /// In place: every rank receives root's values (same shape and dtype on every rank).
  void broadcast(Tensor& tensor, int root = 0, const std::string& what = "broadcast");
  /// Every rank's bytes, in rank order (lengths may differ, zero included).
  std::vector<std::vector<uint8_t>> all_gather(std::span<const uint8_t> bytes, const std::string& what = "all_gather");
  void barrier(const std::string& what = "barrier");

  /// Ends every rank of the job with `code` (MPI_Abort); with one process, std::exit(code).
  [[noreturn]] void abort(int code);
  /// Orderly end (MPI_Finalize); collectives after it throw. Called by the destructor too.
  void shutdown();

 private:
  Communicator();
  friend class Work;
  void wait(Work& w);
  bool test(Work& w);
  void check_open(const char* what) const;
  [[noreturn]] void fail(const std::string& what, const std::string& reason) const;

  int m_rank = 0, m_size = 1, m_local_rank = 0, m_local_size = 1;
  std::string m_launcher = "none";
  double m_timeout = 300.0;
  struct Plugin;
  std::unique_ptr<Plugin> m_mpi, m_nccl;
  Device m_gpu = Device::cpu();
  bool m_shut = false;
};

/// Shorthand for Communicator::world().
inline Communicator& world() { return Communicator::world(); }

}  // namespace drcnn::dist
